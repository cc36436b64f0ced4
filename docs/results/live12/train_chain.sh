#!/bin/bash
# Retrain the three live models on cache live12 (v2 face net, fine-tuned text, voice no-asr).
cd /work/main && . /work/venv/bin/activate && export PYTHONPATH=/work/main OMP_NUM_THREADS=1
C=/work/cache/live12; R=/work/cache/runs12; mkdir -p $R; L=$R/chain.log
step() { local name=$1; shift; echo "$(date +%T) start $name" >> $L; local t0=$SECONDS; "$@" > $R/$name.log 2>&1; echo "$(date +%T) end $name rc=$? $((SECONDS-t0)) s" >> $L; }
(
  step cmarr imer-train train --config live_cmarr --data $C --out $R/cmarr
  step experts_cmarr imer-train live-experts --checkpoint $R/cmarr/model.pt --cache $C --out $R/cmarr/model-experts.pt
  step rohydr imer-train train --config live_rohydr --data $C --out $R/rohydr --set train.pretrain_max_epochs=10 --set train.max_epochs=10
  step experts_rohydr imer-train live-experts --checkpoint $R/rohydr/model.pt --cache $C --out $R/rohydr/model-experts.pt
) &
(
  step imder imer-train train --config live_imder --data $C --out $R/imder --set train.pretrain_max_epochs=10 --set train.max_epochs=10
  step distill imer-train distill --checkpoint $R/imder/model.pt --dataset live --data $C --out $R/imder/model-distilled.pt --epochs 8 --set data.live.train_tuples_per_class=300 --batch-size 128 --learning-rate 4e-4 --score-backend traced
  step experts_imder imer-train live-experts --checkpoint $R/imder/model-distilled.pt --cache $C --out $R/imder/model-experts.pt
) &
wait
echo "$(date +%T) all done" >> $L
