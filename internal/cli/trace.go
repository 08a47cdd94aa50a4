package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ptb-dev/ptb/internal/result"
	"github.com/ptb-dev/ptb/internal/rundir"
	"github.com/ptb-dev/ptb/internal/trace"
)

func newTraceCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "trace",
		Short: "Render or summarize an agent CLI's raw trace (stream-json stdout)",
	}
	cmd.AddCommand(newTraceRenderCmd(e), newTraceSummaryCmd(e))
	return cmd
}

func checkAgentFlag(agent string) error {
	if agent == "" {
		return nil
	}
	for _, a := range trace.Agents() {
		if a == agent {
			return nil
		}
	}
	return usagef("unknown --agent %q: want one of %s (or leave it out to detect)", agent, strings.Join(trace.Agents(), ", "))
}

func newTraceRenderCmd(e *env) *cobra.Command {
	var agent string
	var o trace.RenderOptions
	pipelined := true
	cmd := &cobra.Command{
		Use:   "render FILE",
		Short: "Print a human-readable transcript of a trace",
		Long: `Print a human-readable transcript of an agent trace (RUN_DIR/trace/agent.jsonl):
timestamps where the trace has them, assistant text, tool calls with their
input, tool outputs truncated, usage and errors. The agent is detected from
the trace unless --agent is given.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkAgentFlag(agent); err != nil {
				return err
			}
			f, err := os.Open(args[0])
			if err != nil {
				return fmt.Errorf("open trace: %w", err)
			}
			defer f.Close()
			// A render keeps little alive while it allocates steadily: with
			// the GC at 4x the live heap instead of 2x it spends far less
			// time in write barriers, at about 35 MiB resident
			// (docs/PERFORMANCE.md).
			defer debug.SetGCPercent(debug.SetGCPercent(400))
			r := trace.NewRenderer(e.stdout, o)
			stream := trace.Stream
			if pipelined {
				// two stages on two goroutines: reading and scanning,
				// then decoding and rendering (docs/PERFORMANCE.md)
				stream = trace.StreamPipelined
			}
			_, err = stream(cmd.Context(), f, agent, r)
			if ferr := r.Flush(); err == nil {
				err = ferr
			}
			return err
		},
	}
	cmd.Flags().StringVar(&agent, "agent", "", "agent CLI that wrote the trace: "+strings.Join(trace.Agents(), ", ")+" (default: detect)")
	cmd.Flags().IntVar(&o.MaxOutputLines, "max-lines", 20, "tool output lines shown per result")
	cmd.Flags().IntVar(&o.MaxOutputBytes, "max-bytes", 2000, "tool output bytes shown per result")
	cmd.Flags().BoolVar(&o.ShowUnknown, "unknown", false, "print the raw JSON of events ptb does not normalize")
	cmd.Flags().BoolVar(&pipelined, "pipeline", true, "read and scan the trace on a second goroutine while decoding and rendering (false: one goroutine; the output is the same)")
	return cmd
}

func newTraceSummaryCmd(e *env) *cobra.Command {
	var agent, runDir, model, pricesFile string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "summary FILE",
		Short: "Summarize a trace: tool calls, final message, usage, cost, error",
		Long: `Summarize an agent trace: tool calls, final message, token usage (by each
CLI's own rules), cost from ptb's price table (and the CLI's own figure, when
it reports one), the last error, and early_stop (the agent exited with more
than 30 minutes left) when --run names a run directory whose result.json
records the solve deadline; otherwise early_stop is null.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkAgentFlag(agent); err != nil {
				return err
			}
			prices := trace.DefaultPrices()
			if pricesFile != "" {
				pf, err := os.Open(pricesFile)
				if err != nil {
					return fmt.Errorf("open price table: %w", err)
				}
				prices, err = trace.LoadPrices(pf)
				pf.Close()
				if err != nil {
					return fmt.Errorf("%s: %w", pricesFile, err)
				}
			}
			f, err := os.Open(args[0])
			if err != nil {
				return fmt.Errorf("open trace: %w", err)
			}
			defer f.Close()
			s, err := trace.Summarize(f, agent, model, prices)
			if err != nil {
				return err
			}
			if runDir != "" {
				es, err := earlyStopFromRun(rundir.Dir(runDir))
				if err != nil {
					return err
				}
				s.EarlyStop = es
			}
			if asJSON {
				enc := json.NewEncoder(e.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(s)
			}
			printSummary(e, s)
			return nil
		},
	}
	cmd.Flags().StringVar(&agent, "agent", "", "agent CLI that wrote the trace: "+strings.Join(trace.Agents(), ", ")+" (default: detect)")
	cmd.Flags().StringVar(&runDir, "run", "", "run directory whose result.json gives the solve deadline (for early_stop)")
	cmd.Flags().StringVar(&model, "model", "", "model to price the usage at (default: the model named in the trace)")
	cmd.Flags().StringVar(&pricesFile, "prices", "", "price table JSON overriding the built-in one")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the summary as JSON")
	return cmd
}

// earlyStopFromRun reads the solve deadline and end time from a run's
// result.json; nil when the record does not know them.
func earlyStopFromRun(d rundir.Dir) (*bool, error) {
	var r result.Result
	if err := d.ReadJSON(rundir.ResultFile, &r); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("read run record: %w", err)
	}
	if r.Solve == nil || r.Solve.Deadline == "" {
		return nil, nil
	}
	deadline, err := time.Parse(time.RFC3339Nano, r.Solve.Deadline)
	if err != nil {
		return nil, fmt.Errorf("%s: solve.deadline: %w", d.Path(rundir.ResultFile), err)
	}
	st, ok := r.Stages[result.StageSolve]
	if !ok || st.EndedAt == "" {
		return nil, nil
	}
	ended, err := time.Parse(time.RFC3339Nano, st.EndedAt)
	if err != nil {
		return nil, fmt.Errorf("%s: stages.solve.ended_at: %w", d.Path(rundir.ResultFile), err)
	}
	es := r.Solve.EndReason != result.EndDeadline && trace.EarlyStop(deadline, ended)
	return &es, nil
}

func printSummary(e *env, s *trace.Summary) {
	w := e.stdout
	fmt.Fprintf(w, "agent:          %s\n", s.Agent)
	fmt.Fprintf(w, "model:          %s\n", s.Model)
	fmt.Fprintf(w, "tool calls:     %d\n", s.ToolCalls)
	fmt.Fprintf(w, "final message:  %q\n", s.FinalMessage)
	fmt.Fprintf(w, "tokens:         in %d (cached %d) out %d (reasoning %d)\n",
		s.Usage.InputTokens, s.Usage.CachedInputTokens, s.Usage.OutputTokens, s.Usage.ReasoningTokens)
	cost := "unknown (model not in price table)"
	if s.CostUSD != nil {
		cost = fmt.Sprintf("$%.6f (prices %s)", *s.CostUSD, s.PriceTable)
	}
	if s.CLICostUSD != nil {
		cost += fmt.Sprintf("; CLI says $%.6f", *s.CLICostUSD)
	}
	fmt.Fprintf(w, "cost:           %s\n", cost)
	errText := "none"
	if s.Error != nil {
		errText = *s.Error
	}
	fmt.Fprintf(w, "error:          %s\n", errText)
	es := "unknown"
	if s.EarlyStop != nil {
		es = fmt.Sprint(*s.EarlyStop)
	}
	fmt.Fprintf(w, "early stop:     %s\n", es)
	fmt.Fprintf(w, "events:         %d (%d unknown, %d non-JSON lines)\n", s.Events, s.Unknown, s.NonJSON)
}
