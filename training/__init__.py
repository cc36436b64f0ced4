"""Training and evaluation of the recovery models: data loaders, missing-modality protocols, metrics, trainer, sweeps."""
