"""A small OpenAI-compatible chat server on transformers, for ptb's hf backend.

    python3 server.py --model PATH --port P --api-key K [--chat-template FILE]

Serves GET /health, GET /v1/models and POST /v1/chat/completions (not
streaming) the way vLLM 0.11 does for the requests ptb sends:

* the prompt is the chat template (the file given, else the tokenizer's own)
  rendered with add_generation_prompt and tokenized without special tokens;
* sampling defaults come from the model's generation_config.json as vLLM's
  `--generation-config auto` takes them (values equal to transformers'
  defaults do not count; do_sample is ignored); max_new_tokens caps every
  request's max_tokens; requests may override each sampling field;
* a request whose prompt plus max_tokens exceeds the context length gets
  vLLM's 400 message;
* concurrent requests are collected into one left-padded `generate` call;
* with `tools`, hermes-style `<tool_call>{...}</tool_call>` output becomes
  OpenAI tool_calls (vLLM's --tool-call-parser hermes).

Only the standard library is imported at module level: torch and transformers
are imported when the model is loaded, so that the request handling can be
tested without them (test_server.py).
"""

import argparse
import json
import os
import queue
import re
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# vLLM's defaults when neither the request nor generation_config sets a field.
VLLM_DEFAULTS = {"temperature": 1.0, "top_p": 1.0, "top_k": 0, "min_p": 0.0, "repetition_penalty": 1.0}
SAMPLING_FIELDS = ("temperature", "top_p", "top_k", "min_p", "repetition_penalty")
# transformers' GenerationConfig defaults: to_diff_dict() drops equal values,
# so vLLM never sees them.
HF_DEFAULTS = {"temperature": 1.0, "top_p": 1.0, "top_k": 50, "repetition_penalty": 1.0, "min_p": None, "max_new_tokens": None}
ROLES = ("system", "developer", "user", "assistant", "tool")


class RequestError(Exception):
    """A client error, answered with HTTP 400 and this message."""


def generation_defaults(config):
    """Sampling defaults from a generation_config.json dict, as vLLM's
    get_diff_sampling_param: max_new_tokens becomes max_tokens (a cap)."""
    out = {}
    for key in ("repetition_penalty", "temperature", "top_k", "top_p", "min_p", "max_new_tokens"):
        value = config.get(key)
        if value is None or (key in HF_DEFAULTS and value == HF_DEFAULTS[key]):
            continue
        out["max_tokens" if key == "max_new_tokens" else key] = value
    return out


def message_text(content):
    """The text of an OpenAI message content: a string or a list of parts."""
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for p in content:
            if not isinstance(p, dict) or p.get("type") != "text" or not isinstance(p.get("text"), str):
                raise RequestError("only text content parts are supported")
            parts.append(p["text"])
        return "\n".join(parts)
    raise RequestError("message content must be a string or a list of parts")


def validate_request(body):
    """Checks a chat completion body. Returns (messages for the chat template,
    tools or None, max_tokens or None, sampling overrides); raises
    RequestError."""
    if not isinstance(body, dict):
        raise RequestError("request body must be a JSON object")
    if body.get("stream"):
        raise RequestError("streaming is not supported by this server")
    if body.get("n", 1) != 1:
        raise RequestError("n must be 1")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError("messages must be a non-empty list")
    out = []
    for m in messages:
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise RequestError("each message needs a role among " + ", ".join(ROLES))
        msg = {"role": m["role"], "content": message_text(m.get("content"))}
        if m.get("tool_calls"):
            calls = []
            for c in m["tool_calls"]:
                fn = dict(c.get("function") or {})
                if isinstance(fn.get("arguments"), str):
                    try:
                        fn["arguments"] = json.loads(fn["arguments"])
                    except ValueError:
                        pass
                calls.append({"type": "function", "id": c.get("id"), "function": fn})
            msg["tool_calls"] = calls
        for k in ("name", "tool_call_id"):
            if k in m:
                msg[k] = m[k]
        out.append(msg)
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list) or not all(
            isinstance(t, dict) and t.get("type") == "function" and isinstance(t.get("function"), dict) and t["function"].get("name")
            for t in tools
        ):
            raise RequestError("tools must be a list of {type: function, function: {name, ...}}")
        if body.get("tool_choice", "auto") not in ("auto", "none"):
            raise RequestError('only tool_choice "auto" or "none" is supported')
        if body.get("tool_choice") == "none" or not tools:
            tools = None
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None:
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
            raise RequestError("max_tokens must be an integer")
        if max_tokens < 1:
            raise RequestError(f"max_tokens must be at least 1, got {max_tokens}.")
    overrides = {}
    for k in SAMPLING_FIELDS:
        v = body.get(k)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise RequestError(f"{k} must be a number")
        overrides[k] = v
    return out, tools, max_tokens, overrides


def sampling_params(overrides, defaults):
    """The sampling fields of one request: the request's, else the
    generation-config default, else vLLM's (top_k -1 and 0 both disable)."""
    p = {}
    for k in SAMPLING_FIELDS:
        v = overrides.get(k, defaults.get(k, VLLM_DEFAULTS[k]))
        p[k] = v
    if p["top_k"] is None or p["top_k"] < 0:
        p["top_k"] = 0
    return p


def effective_max_tokens(max_tokens, prompt_len, max_model_len, defaults):
    """vLLM's check and cap: a request that does not fit the context is a 400
    (the message inspect turns into a completion); otherwise the smallest of
    the request's max_tokens, the room left and max_new_tokens."""
    if max_tokens is None:
        if prompt_len >= max_model_len:
            raise RequestError(
                f"This model's maximum context length is {max_model_len} tokens. However, you requested "
                f"{prompt_len} tokens in the messages, Please reduce the length of the messages."
            )
    elif prompt_len + max_tokens > max_model_len:
        raise RequestError(
            f"'max_tokens' or 'max_completion_tokens' is too large: {max_tokens}. This model's maximum "
            f"context length is {max_model_len} tokens and your request has {prompt_len} input tokens "
            f"({max_tokens} > {max_model_len} - {prompt_len})."
        )
    caps = [max_model_len - prompt_len]
    if max_tokens is not None:
        caps.append(max_tokens)
    if defaults.get("max_tokens") is not None:
        caps.append(defaults["max_tokens"])
    return min(caps)


TOOL_CALL_RE = re.compile(r"<tool_call>(.*?)</tool_call>|<tool_call>(?!.*</tool_call>)(.*)", re.DOTALL)


def parse_hermes(text):
    """vLLM's hermes tool parser on a whole completion: returns (content,
    tool_calls). Without a parsable <tool_call> the text stays content."""
    if "<tool_call>" not in text:
        return text, []
    calls = []
    try:
        for m in TOOL_CALL_RE.finditer(text):
            raw = m.group(1) if m.group(1) is not None else m.group(2)
            obj = json.loads(raw.strip())
            if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
                raise ValueError("tool call without a name")
            calls.append({
                "id": "chatcmpl-tool-" + uuid.uuid4().hex,
                "type": "function",
                "function": {"name": obj["name"], "arguments": json.dumps(obj.get("arguments", {}), ensure_ascii=False)},
            })
    except ValueError:
        return text, []
    if not calls:
        return text, []
    content = text[: text.find("<tool_call>")]
    return (content if content.strip() else None), calls


def completion_body(model, text, finish, prompt_len, completion_len, tools):
    content, calls = parse_hermes(text) if tools else (text, [])
    if calls:
        finish = "tool_calls"
    return {
        "id": "chatcmpl-" + uuid.uuid4().hex,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content, "tool_calls": calls},
            "finish_reason": finish,
        }],
        "usage": {"prompt_tokens": prompt_len, "completion_tokens": completion_len, "total_tokens": prompt_len + completion_len},
    }


class Job:
    def __init__(self, prompt_ids, params, max_tokens):
        self.prompt_ids, self.params, self.max_tokens = prompt_ids, params, max_tokens
        self.key = tuple(sorted(params.items()))
        self.done = threading.Event()
        self.result = self.error = None


class Batcher:
    """Collects concurrent jobs with the same sampling parameters into one
    engine.generate call of at most max_batch prompts."""

    def __init__(self, engine, max_batch=64, window=0.01):
        self.engine, self.max_batch, self.window = engine, max_batch, window
        self.queue = queue.Queue()
        self.batches = []  # sizes of the batches run (tests)
        threading.Thread(target=self._loop, daemon=True).start()

    def run(self, job):
        self.queue.put(job)
        job.done.wait()
        if job.error is not None:
            raise job.error
        return job.result

    def _loop(self):
        pending = []
        while True:
            if not pending:
                pending.append(self.queue.get())
            deadline = time.monotonic() + self.window
            while len(pending) < self.max_batch:
                try:
                    pending.append(self.queue.get(timeout=max(0.0, deadline - time.monotonic())))
                except queue.Empty:
                    break
            key = pending[0].key
            batch = [j for j in pending if j.key == key][: self.max_batch]
            pending = [j for j in pending if all(j is not b for b in batch)]
            self.batches.append(len(batch))
            try:
                results = self.engine.generate([j.prompt_ids for j in batch], batch[0].params, [j.max_tokens for j in batch])
                for j, r in zip(batch, results):
                    j.result = r
            except Exception as e:  # one failed batch fails its requests, not the server
                for j in batch:
                    j.error = e
            for j in batch:
                j.done.set()


class HFEngine:
    """The model: chat template, tokenizer and batched generate."""

    def __init__(self, model_path, chat_template=None):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

        self.torch, self.GenerationConfig = torch, GenerationConfig
        self.tok = AutoTokenizer.from_pretrained(model_path)
        self.template = chat_template
        device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model = AutoModelForCausalLM.from_pretrained(model_path, torch_dtype="auto").to(device).eval()
        self.device = device
        gc = self.model_generation_config = self.model.generation_config
        # generate() fills fields left at transformers' defaults from the
        # model's generation config; every field is decided here instead.
        self.model.generation_config = GenerationConfig()
        eos = gc.eos_token_id if gc is not None else None
        eos = list(eos) if isinstance(eos, (list, tuple)) else ([eos] if eos is not None else [])
        if self.tok.eos_token_id is not None and self.tok.eos_token_id not in eos:
            eos.append(self.tok.eos_token_id)
        self.eos = eos
        self.pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else (eos[0] if eos else 0)
        cfg = self.model.config
        self.max_model_len = getattr(cfg, "max_position_embeddings", None) or getattr(cfg.get_text_config(), "max_position_embeddings", None) or self.tok.model_max_length

    def describe(self):
        """Where the model runs, as seen from inside the server's sandbox."""
        torch = self.torch
        cuda = torch.cuda.is_available()
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else []
        return (f"torch {torch.__version__}, torch.cuda.is_available() {cuda}, devices {names}, "
                f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}, model on {self.device}")

    def prompt_ids(self, messages, tools):
        text = self.tok.apply_chat_template(messages, tools=tools, chat_template=self.template, add_generation_prompt=True, tokenize=False)
        return self.tok(text, add_special_tokens=False)["input_ids"]

    def decode(self, ids):
        return self.tok.decode(ids, skip_special_tokens=True)

    def generate(self, prompts, params, max_tokens):
        torch = self.torch
        width = max(len(p) for p in prompts)
        ids = [[self.pad] * (width - len(p)) + list(p) for p in prompts]
        mask = [[0] * (width - len(p)) + [1] * len(p) for p in prompts]
        greedy = params["temperature"] == 0
        gc = self.GenerationConfig(
            do_sample=not greedy,
            temperature=None if greedy else params["temperature"],
            top_p=None if greedy else params["top_p"],
            top_k=None if greedy else params["top_k"],
            min_p=None if greedy or not params["min_p"] else params["min_p"],
            repetition_penalty=params["repetition_penalty"],
            max_new_tokens=max(max_tokens),
            eos_token_id=self.eos or None,
            pad_token_id=self.pad,
        )
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=torch.tensor(ids, device=self.device),
                attention_mask=torch.tensor(mask, device=self.device),
                generation_config=gc,
            )
        results = []
        for row, limit in zip(out[:, width:].tolist(), max_tokens):
            finish = "length"
            for i, t in enumerate(row):
                if t in self.eos:
                    row, finish = row[:i], "stop"
                    break
            if len(row) >= limit:
                row, finish = row[:limit], "length"
            results.append((row, finish))
        return results


class App:
    """Request handling, independent of the engine (tests use a fake one)."""

    def __init__(self, engine, model_name, api_key, defaults, max_batch=64):
        self.engine, self.model_name, self.api_key, self.defaults = engine, model_name, api_key, defaults
        self.batcher = Batcher(engine, max_batch=max_batch)
        self.quiet = False  # no request log lines

    def chat(self, body):
        messages, tools, max_tokens, overrides = validate_request(body)
        try:
            ids = self.engine.prompt_ids(messages, tools)
        except Exception as e:  # a template error is the request's fault, as in vLLM
            raise RequestError(f"chat template: {e}") from e
        limit = effective_max_tokens(max_tokens, len(ids), self.engine.max_model_len, self.defaults)
        out, finish = self.batcher.run(Job(ids, sampling_params(overrides, self.defaults), limit))
        return completion_body(self.model_name, self.engine.decode(out), finish, len(ids), len(out), tools)

    def handler(self):
        app = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *args):  # one line per request on stderr
                if not app.quiet:
                    sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))

            def send_json(self, code, obj):
                b = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(b)))
                self.end_headers()
                self.wfile.write(b)

            def error(self, code, msg):
                self.send_json(code, {"object": "error", "message": msg, "type": "BadRequestError" if code == 400 else "Error", "param": None, "code": code})

            def authorized(self):
                if app.api_key and self.headers.get("Authorization") != "Bearer " + app.api_key:
                    self.error(401, "Unauthorized")
                    return False
                return True

            def do_GET(self):
                if self.path == "/health":
                    self.send_response(200)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif self.path == "/v1/models":
                    if self.authorized():
                        self.send_json(200, {"object": "list", "data": [{"id": app.model_name, "object": "model", "owned_by": "ptb"}]})
                else:
                    self.error(404, "not found")

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n)
                if self.path != "/v1/chat/completions":
                    self.error(404, "not found")
                    return
                if not self.authorized():
                    return
                try:
                    body = json.loads(raw)
                except ValueError as e:
                    self.error(400, f"invalid JSON: {e}")
                    return
                try:
                    self.send_json(200, app.chat(body))
                except RequestError as e:
                    self.error(400, str(e))
                except Exception as e:
                    self.error(500, f"{type(e).__name__}: {e}")

        return Handler


def read_generation_config(model_path, engine):
    """generation_config.json as a dict, else what transformers derives from
    config.json (as vLLM's try_get_generation_config)."""
    import os

    path = os.path.join(model_path, "generation_config.json")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    gc = engine.model_generation_config
    return gc.to_diff_dict() if gc is not None else {}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="model directory; also the served model name")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--api-key", default="")
    ap.add_argument("--chat-template", help="jinja file (default: the tokenizer's template)")
    ap.add_argument("--max-batch", type=int, default=64)
    a = ap.parse_args(argv)
    template = None
    if a.chat_template:
        with open(a.chat_template, encoding="utf-8") as f:
            template = f.read()
    engine = HFEngine(a.model, template)
    print(f"hf server: {engine.describe()}", flush=True)
    defaults = generation_defaults(read_generation_config(a.model, engine))
    print(f"hf server: {a.model} on {engine.device}, max_model_len {engine.max_model_len}, defaults {defaults}", flush=True)
    app = App(engine, a.model, a.api_key, defaults, a.max_batch)
    srv = ThreadingHTTPServer((a.host, a.port), app.handler())
    srv.daemon_threads = True
    print(f"hf server: listening on {a.host}:{a.port}", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
