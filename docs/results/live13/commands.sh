#!/bin/bash
# 2026-12-07 evening: the text network's head as the text expert, temperature-scaled experts.
# The method checkpoints are those of docs/results/live12/train_chain.sh; the MLP experts are reused
# from the files shipped before (--experts-from), so only the text expert and the calibration are new.
cd /work/main && . /work/venv/bin/activate && export PYTHONPATH=/work/main OMP_NUM_THREADS=1
C=/work/cache/live12; P=/work/cache/runs12; R=/work/cache/runs13
imer-train live-experts --checkpoint $P/cmarr/model.pt --cache $C --out $R/cmarr-experts.pt \
    --experts-from assets/models/live_cmarr.pt --no-progress > $R/experts_cmarr.log            # 35 s
imer-train live-experts --checkpoint $P/imder/model-distilled.pt --cache $C --out $R/imder-experts.pt \
    --experts-from assets/models/live_imder.pt --no-progress > $R/experts_imder.log            # 48 s (beside rohydr)
imer-train live-experts --checkpoint $P/rohydr/model.pt --cache $C --out $R/rohydr-experts.pt \
    --experts-from assets/models/live_rohydr.pt --no-progress > $R/experts_rohydr.log          # 57 s
imer-train live-eval --cache $C --checkpoints $R/imder-experts.pt,$R/rohydr-experts.pt,$R/cmarr-experts.pt \
    --out $R/eval5 --skip-fill-baselines --ship $R/ship2 --no-progress                            # 547 s (5 late-fusion seeds)
cp $R/ship2/live_*.pt assets/models/
python scripts/unimodal_seed_spread.py --checkpoint $P/cmarr/model.pt --cache $C --modality all \
    --seeds 0,1,2,3,4,5 --out docs/results/late_fusion_seed_spread.json                        # 294 s
python scripts/eval_voice_text_ood.py --voice-dir /work/cache/ood_voice/urdu --per-class 100 \
    --text-tsv /work/cache/ood_text/goemotions/data/ekman/test.tsv --text-per-class 200 \
    --checkpoint assets/models/live_cmarr.pt --out docs/results/voice_text_ood_v3.json          # 27 s
