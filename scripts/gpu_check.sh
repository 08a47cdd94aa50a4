#!/usr/bin/env bash
# One-shot check of `ptb eval --backend hf` on a GPU machine with torch and
# transformers (no vLLM, no internet needed). It builds a tiny Qwen3-like
# model with random weights and a byte-level BPE tokenizer trained here on the
# benchmark text, serves it with ptb's embedded transformers server INSIDE the
# bwrap sandbox with GPU 0 bound, and runs gsm8k and bfcl with --limit 5.
# Scores are meaningless (random weights); the check is that both evaluations
# complete and that the server ran sandboxed with the GPU visible from inside
# (its own log line: torch.cuda.is_available() True and the device name).
#
#   PTB=bin/ptb DATA=/path/to/shared/datasets scripts/gpu_check.sh
#
# PTB: a ptb binary (default: CGO_ENABLED=0 go build ./cmd/ptb if Go is installed).
# DATA: a copy of shared/datasets (default: shared/datasets, then ../shared/datasets).
# PYTHON: python3 with torch and transformers (default python3).
# GPU: the GPU index bound into the sandbox (default 0). GPU=none is a dry run
#   of the script's own flow without a GPU (e.g. with a stand-in PYTHON): no
#   device is bound and the CUDA check is skipped.
# TEMPLATES_DIR: offline copies of ptb's pinned chat templates (qwen3.jinja at
#   least), passed as --templates-dir and checked by sha256; see TEMPLATE
#   HANDLING. Unset: ptb's pinned cache, or a download (needs the network).
# bwrap must be on PATH (with setpriv and unshare from util-linux when run as root).
# ptb starts bwrap with the sandbox's own environment (an allowlist), so a
# bwrap that needs LD_LIBRARY_PATH for its libraries must be a wrapper script
# that sets it and execs the real binary, e.g.
#   printf '#!/bin/sh\nLD_LIBRARY_PATH=/opt/bwrap/lib exec /opt/bwrap/bin/bwrap "$@"\n' > /usr/local/bin/bwrap
set -euo pipefail
cd "$(dirname "$0")/.."
die() { echo "gpu_check: FAILED: $*" >&2; exit 2; }
PYTHON=${PYTHON:-python3}
GPU=${GPU:-0}
WORK=${WORK:-$(mktemp -d /tmp/ptb-gpu-check.XXXXXX)}
DATA=${DATA:-}
if [[ -z "$DATA" ]]; then
  for d in shared/datasets ../shared/datasets; do [[ -d $d/gsm8k ]] && DATA=$d && break; done
fi
[[ -n "$DATA" && -f "$DATA/gsm8k/test.jsonl" && -f "$DATA/gsm8k/train.jsonl" && -d "$DATA/bfcl" ]] ||
  die "set DATA to a copy of shared/datasets (with gsm8k/test.jsonl, gsm8k/train.jsonl and bfcl/)"
DATA=$(cd "$DATA" && pwd -P)
if [[ -z "${PTB:-}" ]]; then
  command -v go >/dev/null || die "set PTB to a ptb binary (CGO_ENABLED=0 go build -o bin/ptb ./cmd/ptb)"
  CGO_ENABLED=0 go build -o "$WORK/ptb" ./cmd/ptb
  PTB=$WORK/ptb
fi
[[ -x "$PTB" ]] || die "PTB=$PTB is not an executable"
PTB=$(cd "$(dirname "$PTB")" && pwd -P)/$(basename "$PTB")
help=$("$PTB" eval --help 2>&1) || die "$PTB eval --help failed: $help"
[[ $help == *--gpus* ]] || die "$PTB is too old: its eval has no --gpus (rebuild it from this checkout)"
command -v bwrap >/dev/null || die "bwrap is not on PATH: the server must run in the bwrap sandbox (put a bwrap binary and its libraries on PATH / LD_LIBRARY_PATH)"
if [[ $(id -u) == 0 ]]; then
  for t in setpriv unshare; do command -v $t >/dev/null || die "$t (util-linux) is not on PATH; bwrap under root needs it to drop to the sandbox's uid"; done
fi
# As ptb runs it: with a bare environment.
env -i PATH="$PATH" bwrap --unshare-user --unshare-pid --unshare-net --ro-bind / / --dev /dev --proc /proc true 2>/dev/null ||
  env -i PATH="$PATH" bwrap --unshare-pid --unshare-net --ro-bind / / --dev /dev --proc /proc true ||
  die "bwrap cannot create namespaces here, or does not start without LD_LIBRARY_PATH (see its error above, and the note on a wrapper at the top)"
if [[ $GPU == none ]]; then
  GPU_LIST=""
  echo "gpu_check: GPU=none: a dry run, no GPU is bound and CUDA is not checked"
else
  [[ $GPU =~ ^[0-9]+$ ]] || die "GPU=$GPU is not a GPU index (or none)"
  [[ -e /dev/nvidia$GPU ]] || die "/dev/nvidia$GPU does not exist: no GPU $GPU to bind into the sandbox"
  GPU_LIST=$GPU
fi
echo "gpu_check: work dir $WORK, data $DATA, ptb $PTB, bwrap $(command -v bwrap), GPU $GPU"
"$PYTHON" -c 'import torch, transformers; print("host: torch", torch.__version__, "cuda", torch.cuda.is_available(), "transformers", transformers.__version__)' ||
  die "$PYTHON cannot import torch and transformers (set PYTHON)"
nvidia-smi --query-gpu=index,name,memory.used,memory.total --format=csv || true

# ---------------------------------------------------------------------------
# TEMPLATE HANDLING (lead: adapt here). The server always gets ptb's pinned
# template for the base model (qwen3.jinja for --base-model qwen3-1.7b),
# verified by sha256 (ddd80c77...): from TEMPLATES_DIR when set, else from
# ptb's pinned cache ($PTB_CACHE/pinned, filled by `ptb data pull`) or a
# download. The original's files at the pinned commit can be laid out from a
# clone of aisa-group/PostTrainBench, e.g.
#   for f in qwen3 gemma3 gemma3_tool_calling smollm; do git -C CLONE show \
#     9082063a62e10e040f1acacdec2ccfc1467e0c00:src/eval/templates/$f.jinja > DIR/$f.jinja; done
# The ChatML template written below is only the tokenizer's own (saved into
# final_model, which ptb never uses for the server).
# ---------------------------------------------------------------------------
EVAL_TEMPLATE_ARGS=(--base-model qwen3-1.7b)
if [[ -n "${TEMPLATES_DIR:-}" ]]; then
  TEMPLATES_DIR=$(cd "$TEMPLATES_DIR" && pwd -P) || die "TEMPLATES_DIR does not exist"
  [[ -f $TEMPLATES_DIR/qwen3.jinja ]] || die "TEMPLATES_DIR=$TEMPLATES_DIR has no qwen3.jinja"
  if command -v sha256sum >/dev/null; then
    got=$(sha256sum "$TEMPLATES_DIR/qwen3.jinja" | cut -d' ' -f1)
    [[ $got == ddd80c7700049450b953ae6acffa1731d696c5df5b1fbfb2de7e4ead17d708c6 ]] ||
      die "$TEMPLATES_DIR/qwen3.jinja has sha256 $got, not the pinned ddd80c77...: it is not the original's file"
  fi
  EVAL_TEMPLATE_ARGS+=(--templates-dir "$TEMPLATES_DIR")
else
  echo "gpu_check: TEMPLATES_DIR unset: ptb uses its pinned cache or downloads the templates (needs the network)"
fi

# The tokenizer's own template: ChatML with hermes tool calls (Qwen style).
mkdir -p "$WORK/templates"
cat >"$WORK/templates/qwen3.jinja" <<'EOF'
{%- if tools %}<|im_start|>system
{% if messages[0].role == 'system' %}{{ messages[0].content }}

{% endif %}# Tools

You are provided with function signatures within <tools></tools> XML tags:
<tools>{% for tool in tools %}
{{ tool | tojson }}{% endfor %}
</tools>

For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:
<tool_call>
{"name": <function-name>, "arguments": <args-json-object>}
</tool_call><|im_end|>
{% elif messages[0].role == 'system' %}<|im_start|>system
{{ messages[0].content }}<|im_end|>
{% endif %}{% for m in messages %}{% if not (loop.first and m.role == 'system') %}<|im_start|>{{ m.role }}
{{ m.content }}<|im_end|>
{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant
{% endif %}
EOF

"$PYTHON" - "$WORK/final_model" "$DATA" "$WORK/templates/qwen3.jinja" <<'EOF'
import glob, json, os, sys
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

out, data, template = sys.argv[1:4]
files = glob.glob(os.path.join(data, "gsm8k", "*.jsonl")) + glob.glob(os.path.join(data, "bfcl", "**", "*.json*"), recursive=True)
def lines():
    for f in files:
        with open(f, encoding="utf-8", errors="replace") as fh:
            yield from fh
special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
tk = Tokenizer(models.BPE())
tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
tk.decoder = decoders.ByteLevel()
tk.train_from_iterator(lines(), trainers.BpeTrainer(vocab_size=4096, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
tok = PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<|im_end|>", pad_token="<|endoftext|>")
tok.add_tokens(["<tool_call>", "</tool_call>", "<think>", "</think>"])  # not special, as in Qwen: they survive decoding
tok.chat_template = open(template).read()
tok.save_pretrained(out)
try:
    from transformers import Qwen3Config as Config, Qwen3ForCausalLM as Model
except ImportError:
    from transformers import Qwen2Config as Config, Qwen2ForCausalLM as Model
eos, pad = tok.convert_tokens_to_ids("<|im_end|>"), tok.convert_tokens_to_ids("<|endoftext|>")
cfg = Config(vocab_size=len(tok), hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, head_dim=32, max_position_embeddings=8192, tie_word_embeddings=True,
             bos_token_id=pad, eos_token_id=eos, pad_token_id=pad)
torch.manual_seed(0)
Model(cfg).save_pretrained(out)
# As vLLM, the server takes sampling defaults from here; max_new_tokens caps max_tokens.
json.dump({"do_sample": True, "temperature": 0.7, "top_p": 0.8, "top_k": 20, "max_new_tokens": 48,
           "eos_token_id": eos, "pad_token_id": pad}, open(os.path.join(out, "generation_config.json"), "w"), indent=2)
n = len(tok(open(os.path.join(data, "gsm8k", "train.jsonl")).readline())["input_ids"])
print(f"model: {Model.__name__}, vocab {len(tok)}, first gsm8k train row {n} tokens")
EOF

# The sandbox's unprivileged uid must read the model.
chmod -R a+rX "$WORK/final_model"

status=0
for task in gsm8k bfcl; do
  echo "== ptb eval --task $task --backend hf --sandbox bwrap --gpus $GPU"
  if timeout 600 "$PTB" eval --task "$task" --backend hf --sandbox bwrap --gpus "$GPU" --model "$WORK/final_model" --hf-python "$PYTHON" \
      "${EVAL_TEMPLATE_ARGS[@]}" --data-dir "$DATA" --limit 5 --max-tokens 64 --out "$WORK/$task" --json; then
    cat "$WORK/$task/metrics.json"
    head -c 1500 "$WORK/$task/samples.jsonl"; echo
  else
    echo "gpu_check: $task failed"; status=1
  fi
  log=$WORK/$task/server.log
  echo "-- evidence from server.log (the harness's launch line, then the server's own view from inside the sandbox)"
  grep -E '^ptb: starting hf server in the bwrap sandbox' "$log" | head -n 1 | cut -c 1-400 || true
  grep -E '^hf server: torch ' "$log" | head -n 1 || true
  if ! grep -qE "^ptb: starting hf server in the bwrap sandbox \(gpus \[$GPU_LIST\]\)" "$log"; then
    echo "gpu_check: $task: the server was not started in the bwrap sandbox with GPU $GPU"; status=1
  fi
  if [[ $GPU != none ]] && ! grep -qE '^hf server: torch .*torch.cuda.is_available\(\) True, devices \[.+\].*model on cuda' "$log"; then
    echo "gpu_check: $task: the server did not see a CUDA device from inside the sandbox"; status=1
  fi
  echo "-- eval.json (server record)"; cat "$WORK/$task/eval.json" 2>/dev/null || true
  echo "-- server.log (tail)"; tail -n 25 "$log" || true
done
if pgrep -f "$WORK/final_model" >/dev/null; then echo "gpu_check: a server process was left running"; status=1; fi
echo "gpu_check: exit $status (outputs in $WORK)"
exit $status
