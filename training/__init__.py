"""Training and evaluation of the recovery models.

Data loaders, missing-modality protocols, metrics, trainer, sweeps.
"""
