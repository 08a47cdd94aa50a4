package audit

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzModelConfigs feeds arbitrary bytes as final_model's config.json,
// tokenizer_config.json and adapter_config.json to every reader of them
// (readConfig, checkCode, chatTemplate, checkAdapter): none panics, and
// malformed JSON is reported with the file and its line, column and byte.
// Seeds: testdata/fuzz/FuzzModelConfigs.
func FuzzModelConfigs(f *testing.F) {
	f.Add([]byte(`{"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "auto_map": {"AutoModel": "m.M"}, "chat_template": "{{ x }}", "base_model_name_or_path": "Qwen/Qwen3-1.7B"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		for _, n := range []string{"config.json", "tokenizer_config.json", "adapter_config.json"} {
			if err := os.WriteFile(filepath.Join(dir, n), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		var anyv any
		malformed := json.Unmarshal(data, &anyv) != nil
		var obj map[string]json.RawMessage
		notObject := json.Unmarshal(data, &obj) != nil
		located := func(msg, file string) bool {
			return strings.Contains(msg, file) && (strings.Contains(msg, "line ") || strings.Contains(msg, "empty"))
		}

		_, err := readConfig(dir)
		if notObject && (err == nil || !located(err.Error(), "config.json")) {
			t.Fatalf("readConfig: malformed config.json gave %v", err)
		}
		code := checkCode(dir)
		if malformed && (code.Status != Unverified || !located(strings.Join(code.Evidence, "\n"), "config.json")) {
			t.Fatalf("checkCode: malformed config.json gave %s %v", code.Status, code.Evidence)
		}
		_, err = chatTemplate(func(n string) ([]byte, error) { return os.ReadFile(filepath.Join(dir, n)) })
		if notObject && (err == nil || !located(err.Error(), "tokenizer_config.json")) {
			t.Fatalf("chatTemplate: malformed tokenizer_config.json gave %v", err)
		}
		ad := checkAdapter(filepath.Join(dir, "adapter_config.json"), baseID, dir)
		if notObject && (ad.Status != Unverified || !located(strings.Join(ad.Evidence, "\n"), "adapter_config.json")) {
			t.Fatalf("checkAdapter: malformed adapter_config.json gave %s %v", ad.Status, ad.Evidence)
		}
	})
}
