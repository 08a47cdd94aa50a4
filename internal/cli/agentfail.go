package cli

import (
	"bytes"
	"io"
	"os"
	"strings"

	"github.com/ptb-dev/ptb/internal/agent/agentcheck"
	"github.com/ptb-dev/ptb/internal/result"
	"github.com/ptb-dev/ptb/internal/rundir"
	"github.com/ptb-dev/ptb/internal/trace"
)

// tailBytes is how much of output.log agentFailure reads: the end of a run's
// output is where a CLI says why it stopped.
const tailBytes = 256 << 10

// agentFailure returns the agent CLI's own words on why it stopped (its
// last error event, else the most telling stderr line), or "" when the
// solve went well or the CLI said nothing. It reads the run directory with
// bounds: the tail of output.log and a streaming pass over the trace.
func agentFailure(dir rundir.Dir, res *result.Result) string {
	s := res.Solve
	if s == nil || res.Spec.Agent == "scripted" {
		return ""
	}
	if s.FinalModel && (s.ExitCode == nil || *s.ExitCode == 0) {
		return ""
	}
	var sum *trace.Summary
	if f, err := os.Open(dir.Path(rundir.TraceRaw)); err == nil {
		sum, _ = trace.Summarize(f, res.Spec.Agent, "", nil)
		f.Close()
	}
	var stderr, stdout bytes.Buffer
	if f, err := os.Open(dir.Path(rundir.TraceLog)); err == nil {
		if st, err := f.Stat(); err == nil && st.Size() > tailBytes {
			f.Seek(st.Size()-tailBytes, io.SeekStart)
		}
		b, _ := io.ReadAll(io.LimitReader(f, tailBytes))
		f.Close()
		for _, l := range strings.Split(string(b), "\n") {
			// 2026-11-27T08:01:02.123456789Z stderr <line>
			_, rest, ok := strings.Cut(l, " ")
			if !ok {
				continue
			}
			stream, line, _ := strings.Cut(rest, " ")
			switch strings.TrimRight(stream, "+~") {
			case "stderr":
				stderr.WriteString(line + "\n")
			case "stdout":
				stdout.WriteString(line + "\n")
			}
		}
	}
	return agentcheck.CLIError(sum, stderr.String(), stdout.Bytes())
}
