#!/bin/bash
# Retrain the three live models on cache live13: the voice features plus Whisper tiny.en's encoder
# (IMER_LIVE_VOICE_ENCODER=1), everything else as docs/results/live12/train_chain.sh.
cd /work/main && . /work/venv/bin/activate && export PYTHONPATH=/work/main OMP_NUM_THREADS=1 IMER_LIVE_VOICE_ENCODER=1
C=/work/cache/live13; R=/work/cache/runs14; mkdir -p $R; L=$R/chain.log
step() { local name=$1; shift; echo "$(date +%T) start $name" >> $L; local t0=$SECONDS; "$@" > $R/$name.log 2>&1; echo "$(date +%T) end $name rc=$? $((SECONDS-t0)) s" >> $L; }
(
  step cmarr imer-train train --config live_cmarr --data $C --out $R/cmarr --no-progress
  step experts_cmarr imer-train live-experts --checkpoint $R/cmarr/model.pt --cache $C --out $R/cmarr/model-experts.pt --no-progress
  step rohydr imer-train train --config live_rohydr --data $C --out $R/rohydr --set train.pretrain_max_epochs=10 --set train.max_epochs=10 --no-progress
  step experts_rohydr imer-train live-experts --checkpoint $R/rohydr/model.pt --cache $C --out $R/rohydr/model-experts.pt --no-progress
) &
(
  step imder imer-train train --config live_imder --data $C --out $R/imder --set train.pretrain_max_epochs=10 --set train.max_epochs=10 --no-progress
  step distill imer-train distill --checkpoint $R/imder/model.pt --dataset live --data $C --out $R/imder/model-distilled.pt --epochs 8 --set data.live.train_tuples_per_class=300 --batch-size 128 --learning-rate 4e-4 --score-backend traced
  step experts_imder imer-train live-experts --checkpoint $R/imder/model-distilled.pt --cache $C --out $R/imder/model-experts.pt --no-progress
) &
wait
echo "$(date +%T) all done" >> $L
