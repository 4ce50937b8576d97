#!/usr/bin/env bash
# Launch one training stage on one GPU, all GPUs of a node, or several nodes.
#
#   scripts/train.sh stage1 --set data.train_json=... --set data.image_folder=...
#   GPUS=8 scripts/train.sh stage2 --set data.train_json=... --set training.deepspeed=zero3
#   # on every node of a 2-node job (same command, its own NODE_RANK):
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=node0 GPUS=8 scripts/train.sh stage2 --set ...
#
# Environment: GPUS (per node, default: all visible, 1 on CPU), NNODES (1), NODE_RANK (0),
# MASTER_ADDR (127.0.0.1), MASTER_PORT (29500), PYTHON (python).
# Every argument goes to `mqt-llava train`; each process runs the same command.
set -euo pipefail

PYTHON=${PYTHON:-python}
if [[ -z "${GPUS:-}" ]]; then
    GPUS=$("$PYTHON" -c "import torch; print(max(torch.cuda.device_count(), 1))")
fi
NNODES=${NNODES:-1}

if [[ "$GPUS" == 1 && "$NNODES" == 1 ]]; then
    exec "$PYTHON" -m mqt_llava.cli train "$@"
fi
exec "$PYTHON" -m torch.distributed.run \
    --nnodes "$NNODES" \
    --node_rank "${NODE_RANK:-0}" \
    --nproc_per_node "$GPUS" \
    --master_addr "${MASTER_ADDR:-127.0.0.1}" \
    --master_port "${MASTER_PORT:-29500}" \
    -m mqt_llava.cli train "$@"
