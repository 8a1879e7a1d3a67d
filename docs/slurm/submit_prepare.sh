#!/usr/bin/env bash
# Submit the three preparation stages with dependencies: N array tasks make the LR frames, N
# array tasks build LMDB shards once all LR frames exist, one job merges the shards.
#   N=16 GT=REDS/train_sharp LQ=REDS/train_sharp_bicubic/X4 OUT=REDS bash docs/slurm/submit_prepare.sh
set -euo pipefail
N=${N:-16}
HERE=$(cd "$(dirname "$0")" && pwd)
lr=$(STAGE=lr sbatch --parsable --export=ALL --array=0-$((N - 1)) "$HERE/prepare.sbatch")
lmdb=$(STAGE=lmdb sbatch --parsable --export=ALL --array=0-$((N - 1)) --dependency=afterok:"$lr" "$HERE/prepare.sbatch")
merge=$(STAGE=merge sbatch --parsable --export=ALL --cpus-per-task=2 --dependency=afterok:"$lmdb" "$HERE/prepare.sbatch")
echo "submitted: make-lr array $lr -> to-lmdb array $lmdb -> merge $merge"
