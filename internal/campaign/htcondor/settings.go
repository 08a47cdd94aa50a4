package htcondor

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"
)

// Settings are the executor's part of the campaign file:
//
//	executor:
//	  htcondor:
//	    bin: /opt/ptb-condor/ptb-bin   # folder of condor_submit, condor_q, ...; default: PATH
//	    requirements: 'CUDACapability >= 8.0'
//	    accounting_group: group_ptb.alice
//	    vacate_time: 5m                # kill_sig to SIGKILL (job_max_vacate_time)
//	    submit:                        # more submit commands, verbatim
//	      +WantGPUHomeNode: "true"
type Settings struct {
	Bin             string
	Requirements    string
	AccountingGroup string
	// VacateTime is job_max_vacate_time: how long a job has between
	// kill_sig (SIGTERM: ptb stops the agent and leaves a resumable run)
	// and SIGKILL on removal or eviction.
	VacateTime time.Duration
	// Submit holds more submit commands (name, value), in file order.
	Submit [][2]string
}

// DefaultVacateTime leaves ptb run its grace to stop the agent cleanly.
const DefaultVacateTime = 5 * time.Minute

var (
	submitKey = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^\+?[A-Za-z_][A-Za-z0-9_.]*$`) })
	// owned are the submit commands the executor writes itself.
	owned = []string{"universe", "executable", "arguments", "initialdir", "output", "error", "log",
		"queue", "max_materialize", "kill_sig", "checkpoint_exit_code", "getenv", "environment",
		"request_gpus", "request_cpus", "request_memory", "request_disk", "requirements",
		"accounting_group", "job_max_vacate_time", "+ptbcampaign", "+ptbrunid", "+ptbqueuefile",
		"should_transfer_files", "batch_name", "want_graceful_removal", "allowed_job_duration"}
)

// ParseSettings reads the executor's settings node (nil: defaults). Errors
// name the field and its line.
func ParseSettings(n *yaml.Node) (Settings, error) {
	s := Settings{VacateTime: DefaultVacateTime}
	if n == nil || n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.Tag == "!!null") {
		return s, nil
	}
	if n.Kind != yaml.MappingNode {
		return s, fmt.Errorf("line %d: executor htcondor: want a mapping of settings (bin, requirements, accounting_group, vacate_time, submit)", n.Line)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		str := func() (string, error) {
			if v.Kind != yaml.ScalarNode {
				return "", fmt.Errorf("line %d: htcondor.%s: want a string", v.Line, k.Value)
			}
			if strings.ContainsAny(v.Value, "\n\r") {
				return "", fmt.Errorf("line %d: htcondor.%s: a submit value must fit on one line", v.Line, k.Value)
			}
			return v.Value, nil
		}
		var err error
		switch k.Value {
		case "bin":
			s.Bin, err = str()
			if err == nil && s.Bin != "" && !strings.HasPrefix(s.Bin, "/") {
				err = fmt.Errorf("line %d: htcondor.bin: %q is not an absolute path", v.Line, s.Bin)
			}
		case "requirements":
			s.Requirements, err = str()
		case "accounting_group":
			s.AccountingGroup, err = str()
		case "vacate_time":
			var raw string
			if raw, err = str(); err == nil {
				s.VacateTime, err = time.ParseDuration(raw)
				if err != nil || s.VacateTime <= 0 {
					err = fmt.Errorf("line %d: htcondor.vacate_time: %q is not a positive duration such as 5m", v.Line, raw)
				}
			}
		case "submit":
			if v.Kind != yaml.MappingNode {
				return s, fmt.Errorf("line %d: htcondor.submit: want a mapping of submit commands to values", v.Line)
			}
			for j := 0; j+1 < len(v.Content); j += 2 {
				sk, sv := v.Content[j], v.Content[j+1]
				if !submitKey().MatchString(sk.Value) {
					return s, fmt.Errorf("line %d: htcondor.submit: %q is not a submit command name", sk.Line, sk.Value)
				}
				if slices.Contains(owned, strings.ToLower(sk.Value)) {
					return s, fmt.Errorf("line %d: htcondor.submit: %s is set by the executor (use the campaign's resources, or htcondor.requirements / accounting_group / vacate_time)", sk.Line, sk.Value)
				}
				if sv.Kind != yaml.ScalarNode || strings.ContainsAny(sv.Value, "\n\r") {
					return s, fmt.Errorf("line %d: htcondor.submit.%s: want a one-line value", sv.Line, sk.Value)
				}
				s.Submit = append(s.Submit, [2]string{sk.Value, sv.Value})
			}
		default:
			return s, fmt.Errorf("line %d: executor htcondor: unknown field %q (known: bin, requirements, accounting_group, vacate_time, submit)", k.Line, k.Value)
		}
		if err != nil {
			return s, err
		}
	}
	return s, nil
}
