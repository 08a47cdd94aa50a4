// Package kube is the campaign executor for Kubernetes: one batch/v1 Job a
// run, made and read with kubectl.
//
// Each Job carries the campaign in a label (ptb.dev/campaign) and the run id
// in an annotation (ptb.dev/run-id); its pod runs `ptb campaign exec
// --run-id=ID --preempt exit` in the campaign's image with the output root
// on a ReadWriteMany volume at the same path. Its podFailurePolicy ignores
// disruptions (eviction, preemption, node drain) and exit 75 (ptb stopped
// the run cleanly and wants it requeued), so the Job makes a new pod that
// resumes the run; usage errors (2), recorded failures (3, 4) and a busy run
// (5) fail the Job at once; other failures count against backoffLimit.
package kube

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/ptb-dev/ptb/internal/campaign"
)

// Name is the executor's name in a campaign file.
const Name = "kubernetes"

// Labels and annotations ptb puts on its Jobs.
const (
	LabelCampaign   = "ptb.dev/campaign"
	AnnotationRunID = "ptb.dev/run-id"
	containerName   = "ptb"
)

func init() { campaign.Register(Name, New) }

// Settings are the executor's part of the campaign file:
//
//	executor:
//	  kubernetes:
//	    image: registry.example/ptb:1.0   # required: ptb, the agent CLIs, the inference server
//	    namespace: ptb                    # default: the kubeconfig's
//	    volume_claim: ptb-runs            # a ReadWriteMany claim mounted at the output root
//	    node_selector: {gpu: h100}
//	    secret: ptb-keys                  # the Secret holding the forwarded variables, by name
//	    grace_seconds: 120                # terminationGracePeriodSeconds: above ptb's grace
//	    backoff_limit: 2                  # harness failures (exit 1) retried this often
//	    service_account: ptb
//	    kubectl: /usr/local/bin/kubectl   # default: kubectl on PATH
//	    kubeconfig: /etc/ptb/kubeconfig   # default: $KUBECONFIG or ~/.kube/config
type Settings struct {
	Image          string            `yaml:"image"`
	Namespace      string            `yaml:"namespace"`
	VolumeClaim    string            `yaml:"volume_claim"`
	NodeSelector   map[string]string `yaml:"node_selector"`
	Secret         string            `yaml:"secret"`
	GraceSeconds   int64             `yaml:"grace_seconds"`
	BackoffLimit   *int              `yaml:"backoff_limit"`
	ServiceAccount string            `yaml:"service_account"`
	Kubectl        string            `yaml:"kubectl"`
	Kubeconfig     string            `yaml:"kubeconfig"`
}

// DefaultGraceSeconds leaves ptb's default grace (30 s) between TERM and
// KILL of the agent, the record and the exit well inside the pod's grace.
const DefaultGraceSeconds = 120

// Executor runs a campaign's jobs as Kubernetes Jobs.
type Executor struct {
	s Settings
}

// New makes the executor from its campaign-file settings.
func New(node *yaml.Node) (campaign.Executor, error) {
	var s Settings
	if node == nil {
		return nil, errors.New("executor kubernetes: settings are required (at least image)")
	}
	if err := decodeStrict(node, &s); err != nil {
		return nil, err
	}
	if s.Image == "" {
		return nil, fmt.Errorf("line %d: executor kubernetes: image is required (the container image with ptb in it)", node.Line)
	}
	if s.GraceSeconds == 0 {
		s.GraceSeconds = DefaultGraceSeconds
	}
	if s.GraceSeconds < 60 {
		return nil, fmt.Errorf("line %d: executor kubernetes: grace_seconds %d: want at least 60 (ptb needs its grace to stop the agent and save the run)", node.Line, s.GraceSeconds)
	}
	if s.BackoffLimit == nil {
		two := 2
		s.BackoffLimit = &two
	}
	if s.Kubectl == "" {
		s.Kubectl = "kubectl"
	}
	return &Executor{s: s}, nil
}

// decodeStrict decodes node into v, refusing fields v does not have.
func decodeStrict(node *yaml.Node, v any) error {
	b, err := yaml.Marshal(node)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		// Line numbers are relative to the settings: shift them.
		return fmt.Errorf("executor kubernetes (settings from line %d): %v", node.Line, err)
	}
	return nil
}

func (x *Executor) Name() string { return Name }

func (x *Executor) kubectl(ctx context.Context, stdin []byte, args ...string) ([]byte, error) {
	var pre []string
	if x.s.Kubeconfig != "" {
		pre = append(pre, "--kubeconfig", x.s.Kubeconfig)
	}
	if x.s.Namespace != "" {
		pre = append(pre, "--namespace", x.s.Namespace)
	}
	cmd := exec.CommandContext(ctx, x.s.Kubectl, append(pre, args...)...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 2000 {
			msg = msg[:2000] + "..."
		}
		return out, fmt.Errorf("kubectl %s: %v: %s", strings.Join(args, " "), err, msg)
	}
	return out, nil
}

// Check asks the API server for the namespace's Jobs.
func (x *Executor) Check(ctx context.Context) error {
	if _, err := exec.LookPath(x.s.Kubectl); err != nil {
		return fmt.Errorf("executor kubernetes: %s not found: install kubectl or set kubectl: in the executor's settings", x.s.Kubectl)
	}
	if _, err := x.kubectl(ctx, nil, "get", "jobs", "-l", LabelCampaign, "-o", "name", "--request-timeout", "30s"); err != nil {
		return fmt.Errorf("executor kubernetes: the cluster does not answer (check kubeconfig and namespace): %w", err)
	}
	return nil
}

// jobName is the Job of one campaign index: DNS-1123, under 63 characters
// (campaign names have at most 40).
func jobName(campaignName string, index int) string {
	return "ptb-" + campaignName + "-" + strconv.Itoa(index)
}

// Manifest is the Job of one run.
func (x *Executor) Manifest(s campaign.Submission, j campaign.Job) any {
	gpus := ""
	if s.GPUs > 0 {
		gpus = "auto" // the devices the device plugin put in the container
	}
	argv := s.ExecArgv("--run-id="+j.RunID, "exit", gpus)
	logDir := filepath.Join(s.Dir, Name, "logs")
	// The pod's output also goes to the shared volume, where `ptb campaign
	// logs` finds it after the pod is gone.
	command := append([]string{"/bin/sh", "-c", `mkdir -p "$0" && exec "$@" >>"$0/$PTB_RUN_ID.log" 2>&1`, logDir}, argv...)
	env := []envVar{{Name: "PTB_RUN_ID", Value: j.RunID}}
	for _, name := range s.PassEnv {
		env = append(env, envVar{Name: name, ValueFrom: &envSource{SecretKeyRef: &secretKeyRef{Name: x.s.Secret, Key: name}}})
	}
	res := resources{Limits: map[string]string{}, Requests: map[string]string{}}
	if s.GPUs > 0 {
		res.Limits["nvidia.com/gpu"] = strconv.Itoa(s.GPUs)
	}
	if s.CPUs > 0 {
		res.Requests["cpu"] = strconv.Itoa(s.CPUs)
		res.Limits["cpu"] = strconv.Itoa(s.CPUs)
	}
	if s.MemoryMB > 0 {
		res.Requests["memory"] = strconv.FormatInt(s.MemoryMB, 10) + "Mi"
		res.Limits["memory"] = strconv.FormatInt(s.MemoryMB, 10) + "Mi"
	}
	if s.DiskMB > 0 {
		res.Requests["ephemeral-storage"] = strconv.FormatInt(s.DiskMB, 10) + "Mi"
	}
	c := container{Name: containerName, Image: x.s.Image, Command: command, Env: env, Resources: res}
	var vols []volume
	if x.s.VolumeClaim != "" {
		vols = []volume{{Name: "runs", PersistentVolumeClaim: &claimRef{ClaimName: x.s.VolumeClaim}}}
		c.VolumeMounts = []volumeMount{{Name: "runs", MountPath: s.Root}}
	}
	grace := x.s.GraceSeconds
	labels := map[string]string{LabelCampaign: s.Campaign, "ptb.dev/index": strconv.Itoa(j.Index)}
	ann := map[string]string{AnnotationRunID: j.RunID}
	return jobManifest{
		object: object{APIVersion: "batch/v1", Kind: "Job", Metadata: meta{Name: jobName(s.Campaign, j.Index), Labels: labels, Annotations: ann}},
		Spec: jobSpec{
			BackoffLimit: x.s.BackoffLimit,
			PodFailurePolicy: &podFailurePolicy{Rules: []podFailureRule{
				{Action: "Ignore", OnPodConditions: []onPodConditionMatch{{Type: "DisruptionTarget", Status: "True"}}},
				{Action: "Ignore", OnExitCodes: &onExitCodes{ContainerName: containerName, Operator: "In", Values: []int{campaign.ExitRequeue}}},
				{Action: "FailJob", OnExitCodes: &onExitCodes{ContainerName: containerName, Operator: "In", Values: []int{2, 3, 4, campaign.ExitBusy}}},
			}},
			Template: podTemplate{
				Metadata: meta{Labels: labels, Annotations: ann},
				Spec: podSpec{
					RestartPolicy:                 "Never",
					TerminationGracePeriodSeconds: &grace,
					ServiceAccountName:            x.s.ServiceAccount,
					NodeSelector:                  x.s.NodeSelector,
					Containers:                    []container{c},
					Volumes:                       vols,
				},
			},
		},
	}
}

// Submit creates one Job per run, in one kubectl call. A Job of the same
// name that has ended (the engine submits only runs that are not live) is
// deleted first.
func (x *Executor) Submit(ctx context.Context, s campaign.Submission) ([]campaign.Status, error) {
	if len(s.Jobs) == 0 {
		return nil, nil
	}
	if len(s.PassEnv) > 0 && x.s.Secret == "" {
		return nil, fmt.Errorf("executor kubernetes: the campaign forwards %s but the executor names no secret: create a Secret with those keys and set secret: in the executor's settings", strings.Join(s.PassEnv, ", "))
	}
	var names []string
	l := list{APIVersion: "v1", Kind: "List"}
	for _, j := range s.Jobs {
		names = append(names, jobName(s.Campaign, j.Index))
		l.Items = append(l.Items, x.Manifest(s, j))
	}
	if _, err := x.kubectl(ctx, nil, append([]string{"delete", "job", "--ignore-not-found", "--wait=true", "--cascade=foreground"}, names...)...); err != nil {
		return nil, err
	}
	b, err := json.Marshal(l)
	if err != nil {
		return nil, err
	}
	if _, err := x.kubectl(ctx, b, "create", "-f", "-", "-o", "name"); err != nil {
		return nil, err
	}
	var out []campaign.Status
	for i, j := range s.Jobs {
		out = append(out, campaign.Status{RunID: j.RunID, BackendID: names[i], State: campaign.StatePending})
	}
	return out, nil
}

// List reads the campaign's Jobs and their pods in one kubectl call.
func (x *Executor) List(ctx context.Context, c campaign.Ref) ([]campaign.Status, error) {
	b, err := x.kubectl(ctx, nil, "get", "jobs,pods", "-l", LabelCampaign+"="+c.Campaign, "-o", "json")
	if err != nil {
		return nil, err
	}
	return parseList(b)
}

// parseList turns `kubectl get jobs,pods -o json` into statuses, one per
// Job.
func parseList(b []byte) ([]campaign.Status, error) {
	var l struct {
		Items []item `json:"items"`
	}
	if err := json.Unmarshal(b, &l); err != nil {
		return nil, fmt.Errorf("read kubectl get output: %w", err)
	}
	pods := map[string][]item{} // by Job name
	for _, it := range l.Items {
		if it.Kind != "Pod" {
			continue
		}
		for _, o := range it.Metadata.OwnerReferences {
			if o.Kind == "Job" {
				pods[o.Name] = append(pods[o.Name], it)
			}
		}
	}
	var out []campaign.Status
	for _, it := range l.Items {
		if it.Kind != "Job" {
			continue
		}
		var js jobStatus
		if len(it.Status) > 0 {
			if err := json.Unmarshal(it.Status, &js); err != nil {
				return nil, fmt.Errorf("job %s: status: %w", it.Metadata.Name, err)
			}
		}
		st := campaign.Status{RunID: it.Metadata.Annotations[AnnotationRunID], BackendID: it.Metadata.Name}
		st.State, st.Reason = jobState(js, it.Metadata.DeletionTimestamp != "")
		var running, pending bool
		for _, p := range pods[it.Metadata.Name] {
			var ps podStatus
			json.Unmarshal(p.Status, &ps)
			switch {
			case ps.Phase == "Running":
				running = true
			case ps.Phase == "Pending" && p.Metadata.DeletionTimestamp == "":
				pending = true
				if r := pendingReason(ps); r != "" && st.Reason == "" {
					st.Reason = r
				}
			case ps.Phase == "Failed" && requeued(ps):
				st.Restarts++
			}
		}
		st.Restarts += js.Failed
		if st.State == campaign.StateRunning && !running && pending {
			st.State = campaign.StatePending
		}
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b campaign.Status) int { return strings.Compare(a.BackendID, b.BackendID) })
	return out, nil
}

// jobState maps a Job's status to a campaign state.
func jobState(js jobStatus, deleting bool) (campaign.State, string) {
	for _, c := range js.Conditions {
		if c.Status != "True" {
			continue
		}
		switch c.Type {
		case "Complete", "SuccessCriteriaMet":
			return campaign.StateExited, ""
		case "Failed", "FailureTarget":
			return campaign.StateFailed, strings.TrimSpace(c.Reason + ": " + c.Message)
		}
	}
	if deleting {
		return campaign.StateRunning, "being deleted"
	}
	return campaign.StateRunning, ""
}

// requeued reports whether a failed pod was a disruption or a clean stop
// for requeue (both ignored by the podFailurePolicy).
func requeued(ps podStatus) bool {
	for _, c := range ps.Conditions {
		if c.Type == "DisruptionTarget" && c.Status == "True" {
			return true
		}
	}
	for _, cs := range ps.ContainerStatuses {
		if t := cs.State.Terminated; t != nil && t.ExitCode == campaign.ExitRequeue {
			return true
		}
	}
	return false
}

func pendingReason(ps podStatus) string {
	for _, c := range ps.Conditions {
		if c.Type == "PodScheduled" && c.Status == "False" {
			return strings.TrimSpace(c.Reason + ": " + c.Message)
		}
	}
	for _, cs := range ps.ContainerStatuses {
		if w := cs.State.Waiting; w != nil && w.Reason != "" {
			return w.Reason
		}
	}
	return ps.Reason
}

// Cancel deletes the runs' Jobs; their pods get TERM and their grace, in
// which ptb stops the agent and saves the run.
func (x *Executor) Cancel(ctx context.Context, c campaign.Ref, runIDs []string) error {
	st, err := x.List(ctx, c)
	if err != nil {
		return err
	}
	var names []string
	for _, s := range st {
		if slices.Contains(runIDs, s.RunID) {
			names = append(names, s.BackendID)
		}
	}
	if len(names) == 0 {
		return nil
	}
	_, err = x.kubectl(ctx, nil, append([]string{"delete", "job", "--ignore-not-found", "--wait=false", "--cascade=background"}, names...)...)
	return err
}

// Logs returns the run's output file on the shared volume.
func (x *Executor) Logs(ctx context.Context, c campaign.Ref, runID string) ([]string, error) {
	p := filepath.Join(c.Dir, Name, "logs", runID+".log")
	if _, err := os.Stat(p); err != nil {
		return nil, fmt.Errorf("logs of %s: %w (the pod has not started, or the output root is not the shared volume)", runID, err)
	}
	return []string{p}, nil
}
