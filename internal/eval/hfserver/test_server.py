"""Tests of server.py without torch: run `python3 -m unittest -v test_server`
here (the Go test TestHFServerPython does)."""

import json
import threading
import time
import unittest
import urllib.error
import urllib.request
from http.server import ThreadingHTTPServer

import server


class FakeEngine:
    """One token per character; generate answers each prompt with `reply`
    (a str, or a function of the prompt text), truncated to max_tokens."""

    max_model_len = 200

    def __init__(self, reply="hello", delay=0.0):
        self.reply, self.delay = reply, delay
        self.calls = []  # (batch size, params, max_tokens)

    def prompt_ids(self, messages, tools):
        text = "".join(f"<{m['role']}>{m['content']}" for m in messages)
        if tools:
            text += "<tools>" + ",".join(t["function"]["name"] for t in tools)
        return [ord(c) for c in text]

    def decode(self, ids):
        return "".join(chr(i) for i in ids)

    def generate(self, prompts, params, max_tokens):
        time.sleep(self.delay)
        self.calls.append((len(prompts), params, list(max_tokens)))
        out = []
        for p, limit in zip(prompts, max_tokens):
            text = self.reply(self.decode(p)) if callable(self.reply) else self.reply
            ids = [ord(c) for c in text]
            out.append((ids[:limit], "length" if len(ids) > limit else "stop"))
        return out


class PureTest(unittest.TestCase):
    def test_generation_defaults(self):
        cases = [
            ({}, {}),
            # transformers' defaults are not defaults for vLLM; do_sample is ignored
            ({"temperature": 1.0, "top_p": 1.0, "top_k": 50, "repetition_penalty": 1.0, "do_sample": False}, {}),
            ({"temperature": 0.6, "top_p": 0.95, "top_k": 20, "max_new_tokens": 2048, "bos_token_id": 1},
             {"temperature": 0.6, "top_p": 0.95, "top_k": 20, "max_tokens": 2048}),
            ({"repetition_penalty": 1.1, "min_p": 0.05, "top_k": 64}, {"repetition_penalty": 1.1, "min_p": 0.05, "top_k": 64}),
            ({"temperature": None, "max_new_tokens": None}, {}),
        ]
        for cfg, want in cases:
            self.assertEqual(server.generation_defaults(cfg), want, cfg)

    def test_sampling_params(self):
        d = server.generation_defaults({"temperature": 0.7, "top_k": 20, "max_new_tokens": 100})
        self.assertEqual(server.sampling_params({}, d),
                         {"temperature": 0.7, "top_p": 1.0, "top_k": 20, "min_p": 0.0, "repetition_penalty": 1.0})
        self.assertEqual(server.sampling_params({"temperature": 0, "top_k": -1}, d)["temperature"], 0)
        self.assertEqual(server.sampling_params({"top_k": -1}, {})["top_k"], 0)
        self.assertEqual(server.sampling_params({}, {}), server.VLLM_DEFAULTS)

    def test_effective_max_tokens(self):
        cap = {"max_tokens": 50}
        self.assertEqual(server.effective_max_tokens(100, 10, 200, cap), 50)
        self.assertEqual(server.effective_max_tokens(30, 10, 200, cap), 30)
        self.assertEqual(server.effective_max_tokens(None, 10, 200, {}), 190)
        self.assertEqual(server.effective_max_tokens(None, 10, 200, cap), 50)
        # the check uses the request's max_tokens before the cap, as vLLM
        with self.assertRaises(server.RequestError) as e:
            server.effective_max_tokens(4000, 120, 200, cap)
        self.assertEqual(str(e.exception),
                         "'max_tokens' or 'max_completion_tokens' is too large: 4000. This model's maximum context "
                         "length is 200 tokens and your request has 120 input tokens (4000 > 200 - 120).")
        with self.assertRaises(server.RequestError) as e:
            server.effective_max_tokens(None, 200, 200, {})
        self.assertIn("maximum context length", str(e.exception))

    def test_validate_request(self):
        msgs, tools, mt, over = server.validate_request({"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5})
        self.assertEqual((msgs, tools, mt, over), ([{"role": "user", "content": "hi"}], None, 5, {}))
        tool = {"type": "function", "function": {"name": "f", "parameters": {}}}
        _, tools, _, _ = server.validate_request({"messages": [{"role": "user", "content": "x"}], "tools": [tool], "tool_choice": "auto"})
        self.assertEqual(tools, [tool])
        _, tools, _, _ = server.validate_request({"messages": [{"role": "user", "content": "x"}], "tools": [tool], "tool_choice": "none"})
        self.assertIsNone(tools)
        msgs, _, _, _ = server.validate_request({"messages": [
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"x\": 1}"}}]},
            {"role": "tool", "content": "3", "tool_call_id": "c1"}]})
        self.assertEqual(msgs[0]["content"], "a\nb")
        self.assertEqual(msgs[1]["tool_calls"][0]["function"]["arguments"], {"x": 1})
        self.assertEqual(msgs[2]["tool_call_id"], "c1")
        _, _, _, over = server.validate_request({"messages": [{"role": "user", "content": "x"}], "temperature": 0, "top_p": 0.5})
        self.assertEqual(over, {"temperature": 0, "top_p": 0.5})
        bad = [
            ([], "JSON object"),
            ({"messages": []}, "non-empty"),
            ({"messages": [{"role": "robot", "content": "x"}]}, "role"),
            ({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}, "max_tokens must be at least 1, got 0."),
            ({"messages": [{"role": "user", "content": "x"}], "max_tokens": "5"}, "integer"),
            ({"messages": [{"role": "user", "content": "x"}], "stream": True}, "streaming"),
            ({"messages": [{"role": "user", "content": "x"}], "n": 2}, "n must be 1"),
            ({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function"}]}, "tools"),
            ({"messages": [{"role": "user", "content": "x"}], "tools": [tool], "tool_choice": "required"}, "tool_choice"),
            ({"messages": [{"role": "user", "content": "x"}], "temperature": "hot"}, "temperature"),
            ({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, "text content"),
        ]
        for body, msg in bad:
            with self.assertRaises(server.RequestError, msg=body) as e:
                server.validate_request(body)
            self.assertIn(msg, str(e.exception))

    def test_parse_hermes(self):
        content, calls = server.parse_hermes('<tool_call>\n{"name": "f", "arguments": {"a": 1, "s": "é"}}\n</tool_call>')
        self.assertIsNone(content)
        self.assertEqual([c["function"] for c in calls], [{"name": "f", "arguments": '{"a": 1, "s": "é"}'}])
        self.assertTrue(calls[0]["id"].startswith("chatcmpl-tool-"))
        self.assertEqual(calls[0]["type"], "function")
        content, calls = server.parse_hermes('Let me call.\n<tool_call>{"name": "f", "arguments": {}}</tool_call>\n<tool_call>{"name": "g", "arguments": {"x": [1]}}</tool_call>')
        self.assertEqual(content, "Let me call.\n")
        self.assertEqual([c["function"]["name"] for c in calls], ["f", "g"])
        self.assertEqual(calls[1]["function"]["arguments"], '{"x": [1]}')
        # an unterminated last call (generation stopped at </tool_call>'s eos)
        _, calls = server.parse_hermes('<tool_call>{"name": "f", "arguments": {"a": 2}}')
        self.assertEqual(calls[0]["function"]["arguments"], '{"a": 2}')
        for text in ["no tools here", "<tool_call>not json</tool_call>", '<tool_call>{"arguments": {}}</tool_call>']:
            self.assertEqual(server.parse_hermes(text), (text, []), text)


class HTTPTest(unittest.TestCase):
    def start(self, engine, defaults=None, max_batch=64):
        app = server.App(engine, "/models/final_model", "sekret", defaults or {}, max_batch=max_batch)
        app.quiet = True
        srv = ThreadingHTTPServer(("127.0.0.1", 0), app.handler())
        srv.daemon_threads = True
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        self.addCleanup(srv.server_close)
        self.addCleanup(srv.shutdown)
        self.base = f"http://127.0.0.1:{srv.server_address[1]}"
        return app

    def call(self, path, body=None, key="sekret"):
        req = urllib.request.Request(self.base + path, data=None if body is None else json.dumps(body).encode())
        if key:
            req.add_header("Authorization", "Bearer " + key)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                raw = r.read()
                return r.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def test_health_models_auth(self):
        self.start(FakeEngine())
        self.assertEqual(self.call("/health", key=None), (200, None))
        code, body = self.call("/v1/models")
        self.assertEqual((code, body["data"][0]["id"]), (200, "/models/final_model"))
        self.assertEqual(self.call("/v1/models", key="wrong")[0], 401)
        self.assertEqual(self.call("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}]}, key=None)[0], 401)

    def test_chat(self):
        eng = FakeEngine(reply="The answer is 4.")
        self.start(eng, defaults={"temperature": 0.6, "max_tokens": 10})
        code, body = self.call("/v1/chat/completions", {"model": "/models/final_model", "messages": [{"role": "user", "content": "2+2?"}], "max_tokens": 100})
        self.assertEqual(code, 200, body)
        choice = body["choices"][0]
        self.assertEqual(choice["message"], {"role": "assistant", "content": "The answer", "tool_calls": []})
        self.assertEqual(choice["finish_reason"], "length")
        self.assertEqual(eng.calls[0][1]["temperature"], 0.6)
        self.assertEqual(eng.calls[0][2], [10])  # max_new_tokens caps the request's 100
        self.assertEqual(body["usage"]["completion_tokens"], 10)
        # context overflow: vLLM's 400, which ptb's client scores as a completion
        code, body = self.call("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "max_tokens": 4000})
        self.assertEqual(code, 400)
        self.assertIn("maximum context length is 200 tokens", body["message"])
        code, body = self.call("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "max_tokens": 0})
        self.assertEqual((code, body["message"]), (400, "max_tokens must be at least 1, got 0."))

    def test_tool_calls(self):
        eng = FakeEngine(reply='<tool_call>\n{"name": "calc", "arguments": {"a": 1}}\n</tool_call>')
        self.start(eng)
        tools = [{"type": "function", "function": {"name": "calc", "parameters": {"type": "object"}}}]
        code, body = self.call("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "tools": tools, "tool_choice": "auto", "max_tokens": 100})
        self.assertEqual(code, 200, body)
        msg = body["choices"][0]["message"]
        self.assertIsNone(msg["content"])
        self.assertEqual(msg["tool_calls"][0]["function"], {"name": "calc", "arguments": '{"a": 1}'})
        self.assertEqual(body["choices"][0]["finish_reason"], "tool_calls")
        # without tools the same text is plain content
        code, body = self.call("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "max_tokens": 100})
        self.assertEqual(body["choices"][0]["message"]["content"], eng.reply)

    def test_batching(self):
        eng = FakeEngine(reply=lambda prompt: prompt[-3:], delay=0.2)
        app = self.start(eng, max_batch=8)
        results = [None] * 12

        def one(i):
            results[i] = self.call("/v1/chat/completions", {"messages": [{"role": "user", "content": f"q{i:02d}"}], "max_tokens": 5 + i})

        threads = [threading.Thread(target=one, args=(i,)) for i in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for i, (code, body) in enumerate(results):
            self.assertEqual(code, 200)
            self.assertEqual(body["choices"][0]["message"]["content"], f"q{i:02d}")
        self.assertEqual(sum(app.batcher.batches), 12)
        self.assertLessEqual(max(app.batcher.batches), 8)
        self.assertGreater(max(app.batcher.batches), 1, app.batcher.batches)
        # each request keeps its own max_tokens inside a batch
        self.assertTrue(any(len(set(c[2])) > 1 for c in eng.calls), eng.calls)

    def test_engine_error_is_500(self):
        class Broken(FakeEngine):
            def generate(self, prompts, params, max_tokens):
                raise RuntimeError("CUDA error")

        self.start(Broken())
        code, body = self.call("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "max_tokens": 5})
        self.assertEqual(code, 500)
        self.assertIn("CUDA error", body["message"])


class ImportTest(unittest.TestCase):
    def test_no_torch_at_import(self):
        import sys

        self.assertNotIn("torch", sys.modules)
        self.assertNotIn("transformers", sys.modules)


if __name__ == "__main__":
    unittest.main()
