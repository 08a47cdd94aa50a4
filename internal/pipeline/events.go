package pipeline

import (
	"fmt"
	"time"

	"github.com/ptb-dev/ptb/internal/result"
	"github.com/ptb-dev/ptb/internal/runevents"
)

// HeartbeatEvent is how often a running agent's heartbeat event (and the
// "agent running" progress line) is emitted; solve.json's heartbeat is
// saved every Heartbeat.
const HeartbeatEvent = time.Minute

// emit stamps ev, hands it to the runner's event handler and writes its
// progress line. A handler's error is logged once and the run goes on:
// events report a run, they never stop it. emit may be called from the
// heartbeat goroutine and the stage loop at once.
func (x *run) emit(ev runevents.Event) {
	if ev.Time.IsZero() {
		ev.Time = x.r.now()
	}
	if x.r.Events != nil {
		if err := x.r.Events.Event(ev); err != nil {
			x.eventErr.Do(func() {
				x.log.Warn("run event not recorded; later failures are not logged", "type", ev.Type, "err", err)
			})
		}
	}
	if line := progressLine(ev); line != "" {
		x.r.progressf("%s", line)
	}
}

// progressLine renders an event as the progress line on stderr ("" for
// events that have none).
func progressLine(ev runevents.Event) string {
	switch ev.Type {
	case runevents.StageStarted:
		return fmt.Sprintf("ptb: %s ...\n", ev.Stage)
	case runevents.StageEnded:
		return fmt.Sprintf("ptb: %s %s%s\n", ev.Stage, ev.Status, suffix(result.Stage{Error: ev.Error, Reason: ev.Reason}))
	case runevents.Heartbeat:
		return fmt.Sprintf("ptb: solve: agent running, %s left\n", seconds(ev.RemainingS).Round(time.Second))
	case runevents.Reprompt:
		return fmt.Sprintf("ptb: solve: agent exited with %s left; reprompting\n", seconds(ev.RemainingS).Round(time.Second))
	case runevents.LimitHit:
		return fmt.Sprintf("ptb: solve: the agent hit its %s limit and was stopped\n", ev.Limit)
	}
	return ""
}

func seconds(s *float64) time.Duration {
	if s == nil {
		return 0
	}
	return time.Duration(*s * float64(time.Second))
}

func secondsOf(d time.Duration) *float64 {
	s := d.Seconds()
	return &s
}
