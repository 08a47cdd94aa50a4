// Package kubetest is a fake Kubernetes node for the kube executor's tests:
// there is no kubelet or scheduler on the development machines, only a
// real control plane (scripts/ci/kube-up.sh). The node binds every
// unscheduled pod to itself, runs each container's command as a local
// process, reports its phase and exit code, and on deletion (cancel,
// eviction) sends TERM to the process group, KILL after the pod's grace,
// then deletes the pod, as a kubelet would. It talks to the API server with
// plain HTTP and the kubeconfig's bearer token.
package kubetest

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// Client is a minimal API server client.
type Client struct {
	Server string
	Token  string
	http   *http.Client
}

// NewClient reads the server and the token from a kubeconfig file (the
// first cluster and user).
func NewClient(kubeconfig string) (*Client, error) {
	b, err := os.ReadFile(kubeconfig)
	if err != nil {
		return nil, err
	}
	var kc struct {
		Clusters []struct {
			Cluster struct {
				Server string `yaml:"server"`
			} `yaml:"cluster"`
		} `yaml:"clusters"`
		Users []struct {
			User struct {
				Token string `yaml:"token"`
			} `yaml:"user"`
		} `yaml:"users"`
	}
	if err := yaml.Unmarshal(b, &kc); err != nil {
		return nil, fmt.Errorf("read %s: %w", kubeconfig, err)
	}
	if len(kc.Clusters) == 0 || len(kc.Users) == 0 {
		return nil, fmt.Errorf("read %s: no cluster or user", kubeconfig)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} // the test plane's self-signed certificate
	return &Client{Server: kc.Clusters[0].Cluster.Server, Token: kc.Users[0].User.Token, http: &http.Client{Transport: tr, Timeout: 30 * time.Second}}, nil
}

// Do sends one request; a status of 300 or more is an error with the body.
func (c *Client) Do(ctx context.Context, method, path, contentType string, body any, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Server+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	if contentType == "" {
		contentType = "application/json"
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		return &StatusError{Code: resp.StatusCode, Body: string(b), What: method + " " + path}
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// StatusError is an API server answer of 300 or more.
type StatusError struct {
	Code int
	Body string
	What string
}

func (e *StatusError) Error() string { return fmt.Sprintf("%s: %d %s", e.What, e.Code, e.Body) }

// Node is a running fake node.
type Node struct {
	Name   string
	c      *Client
	mu     sync.Mutex
	procs  map[string]*proc // by pod uid
	cancel context.CancelFunc
	done   chan struct{}
}

type proc struct {
	cmd      *exec.Cmd
	exited   chan struct{}
	code     int
	termSent bool
	reported bool
}

type pod struct {
	Metadata struct {
		Name                       string            `json:"name"`
		Namespace                  string            `json:"namespace"`
		UID                        string            `json:"uid"`
		DeletionTimestamp          string            `json:"deletionTimestamp"`
		DeletionGracePeriodSeconds *int64            `json:"deletionGracePeriodSeconds"`
		Labels                     map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec struct {
		NodeName   string `json:"nodeName"`
		Containers []struct {
			Name    string   `json:"name"`
			Command []string `json:"command"`
			Args    []string `json:"args"`
			Env     []struct {
				Name      string `json:"name"`
				Value     string `json:"value"`
				ValueFrom *struct {
					SecretKeyRef *struct {
						Name string `json:"name"`
						Key  string `json:"key"`
					} `json:"secretKeyRef"`
				} `json:"valueFrom"`
			} `json:"env"`
		} `json:"containers"`
	} `json:"spec"`
	Status struct {
		Phase      string           `json:"phase"`
		Conditions []map[string]any `json:"conditions"`
	} `json:"status"`
}

// Start registers a node named name and runs it until the test ends.
func Start(t *testing.T, kubeconfig, name string) *Node {
	t.Helper()
	c, err := NewClient(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &Node{Name: name, c: c, procs: map[string]*proc{}, cancel: cancel, done: make(chan struct{})}
	node := map[string]any{
		"apiVersion": "v1", "kind": "Node",
		"metadata": map[string]any{"name": name, "labels": map[string]string{"kubernetes.io/hostname": name}},
	}
	if err := c.Do(ctx, "POST", "/api/v1/nodes", "", node, nil); err != nil {
		if se, ok := err.(*StatusError); !ok || se.Code != http.StatusConflict {
			t.Fatalf("register node: %v", err)
		}
	}
	status := map[string]any{"status": map[string]any{
		"capacity":    map[string]string{"cpu": "64", "memory": "256Gi", "pods": "110", "nvidia.com/gpu": "4", "ephemeral-storage": "1Ti"},
		"allocatable": map[string]string{"cpu": "64", "memory": "256Gi", "pods": "110", "nvidia.com/gpu": "4", "ephemeral-storage": "1Ti"},
		"conditions":  []map[string]string{{"type": "Ready", "status": "True", "reason": "FakeNodeReady"}},
	}}
	if err := c.Do(ctx, "PATCH", "/api/v1/nodes/"+name+"/status", "application/merge-patch+json", status, nil); err != nil {
		t.Fatalf("node status: %v", err)
	}
	go n.loop(ctx)
	t.Cleanup(n.Stop)
	return n
}

// Stop ends the node's loop and kills what it still runs.
func (n *Node) Stop() {
	n.cancel()
	<-n.done
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, p := range n.procs {
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.exited
	}
}

func (n *Node) loop(ctx context.Context) {
	defer close(n.done)
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		n.sync(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (n *Node) sync(ctx context.Context) {
	var pods struct {
		Items []pod `json:"items"`
	}
	if err := n.c.Do(ctx, "GET", "/api/v1/pods", "", nil, &pods); err != nil {
		return
	}
	for _, p := range pods.Items {
		base := "/api/v1/namespaces/" + p.Metadata.Namespace + "/pods/" + p.Metadata.Name
		deleting := p.Metadata.DeletionTimestamp != ""
		switch {
		case p.Spec.NodeName == "" && !deleting:
			binding := map[string]any{"apiVersion": "v1", "kind": "Binding", "metadata": map[string]any{"name": p.Metadata.Name},
				"target": map[string]any{"apiVersion": "v1", "kind": "Node", "name": n.Name}}
			n.c.Do(ctx, "POST", base+"/binding", "", binding, nil)
		case p.Spec.NodeName != n.Name:
		default:
			n.syncPod(ctx, base, p, deleting)
		}
	}
}

func (n *Node) syncPod(ctx context.Context, base string, p pod, deleting bool) {
	n.mu.Lock()
	pr := n.procs[p.Metadata.UID]
	n.mu.Unlock()
	if pr == nil {
		if deleting || p.Status.Phase == "Succeeded" || p.Status.Phase == "Failed" {
			if deleting {
				n.c.Do(ctx, "DELETE", base, "", map[string]any{"gracePeriodSeconds": 0}, nil)
			}
			return
		}
		pr = n.start(ctx, p)
		n.mu.Lock()
		n.procs[p.Metadata.UID] = pr
		n.mu.Unlock()
		if pr.cmd == nil {
			n.report(ctx, base, p, "Failed", 128, "StartError")
			pr.reported = true
			return
		}
		n.report(ctx, base, p, "Running", 0, "")
		return
	}
	select {
	case <-pr.exited:
		if !pr.reported {
			phase := "Succeeded"
			if pr.code != 0 {
				phase = "Failed"
			}
			if n.report(ctx, base, p, phase, pr.code, "") == nil {
				pr.reported = true
			}
		}
		if deleting && pr.reported {
			n.c.Do(ctx, "DELETE", base, "", map[string]any{"gracePeriodSeconds": 0}, nil)
		}
	default:
		if deleting && !pr.termSent {
			pr.termSent = true
			syscall.Kill(-pr.cmd.Process.Pid, syscall.SIGTERM)
			grace := int64(30)
			if g := p.Metadata.DeletionGracePeriodSeconds; g != nil {
				grace = *g
			}
			go func() {
				select {
				case <-pr.exited:
				case <-time.After(time.Duration(grace) * time.Second):
					syscall.Kill(-pr.cmd.Process.Pid, syscall.SIGKILL)
				}
			}()
		}
	}
}

// start runs the pod's first container as a process group of its own.
func (n *Node) start(ctx context.Context, p pod) *proc {
	pr := &proc{exited: make(chan struct{})}
	if len(p.Spec.Containers) == 0 {
		close(pr.exited)
		return pr
	}
	c := p.Spec.Containers[0]
	argv := append(append([]string{}, c.Command...), c.Args...)
	if len(argv) == 0 {
		close(pr.exited)
		return pr
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "KUBERNETES_POD_NAME="+p.Metadata.Name)
	for _, e := range c.Env {
		v := e.Value
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			var sec struct {
				Data map[string]string `json:"data"`
			}
			ref := e.ValueFrom.SecretKeyRef
			if err := n.c.Do(ctx, "GET", "/api/v1/namespaces/"+p.Metadata.Namespace+"/secrets/"+ref.Name, "", nil, &sec); err == nil {
				b, _ := base64.StdEncoding.DecodeString(sec.Data[ref.Key])
				v = string(b)
			}
		}
		cmd.Env = append(cmd.Env, e.Name+"="+v)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		close(pr.exited)
		return pr
	}
	pr.cmd = cmd
	go func() {
		cmd.Wait()
		pr.code = cmd.ProcessState.ExitCode()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			pr.code = 128 + int(ws.Signal())
		}
		close(pr.exited)
	}()
	return pr
}

// report writes the pod's phase and its container's state, keeping the
// conditions others set (DisruptionTarget).
func (n *Node) report(ctx context.Context, base string, p pod, phase string, code int, reason string) error {
	now := time.Now().UTC().Format(time.RFC3339)
	ready := "False"
	if phase == "Running" {
		ready = "True"
	}
	conds := []map[string]any{}
	for _, c := range p.Status.Conditions {
		switch c["type"] {
		case "Ready", "ContainersReady", "Initialized", "PodScheduled":
		default:
			conds = append(conds, c)
		}
	}
	for _, t := range []string{"PodScheduled", "Initialized"} {
		conds = append(conds, map[string]any{"type": t, "status": "True", "lastTransitionTime": now})
	}
	for _, t := range []string{"Ready", "ContainersReady"} {
		conds = append(conds, map[string]any{"type": t, "status": ready, "lastTransitionTime": now})
	}
	name := "ptb"
	if len(p.Spec.Containers) > 0 {
		name = p.Spec.Containers[0].Name
	}
	state := map[string]any{"running": map[string]any{"startedAt": now}}
	if phase != "Running" {
		if reason == "" {
			reason = "Completed"
			if code != 0 {
				reason = "Error"
			}
		}
		state = map[string]any{"terminated": map[string]any{"exitCode": code, "reason": reason, "finishedAt": now, "startedAt": now}}
	}
	cs := []map[string]any{{"name": name, "state": state, "ready": phase == "Running", "restartCount": 0, "image": "fake", "imageID": "fake"}}
	patch := map[string]any{"status": map[string]any{"phase": phase, "conditions": conds, "containerStatuses": cs, "startTime": now, "hostIP": "127.0.0.1", "podIP": "127.0.0.1"}}
	return n.c.Do(ctx, "PATCH", base+"/status", "application/merge-patch+json", patch, nil)
}

// Evict asks the API server to evict a pod (policy/v1 Eviction), as a
// node drain or a preemption does: the pod gets the DisruptionTarget
// condition and is deleted with its grace.
func Evict(ctx context.Context, c *Client, namespace, podName string) error {
	ev := map[string]any{"apiVersion": "policy/v1", "kind": "Eviction", "metadata": map[string]any{"name": podName, "namespace": namespace}}
	return c.Do(ctx, "POST", "/api/v1/namespaces/"+namespace+"/pods/"+podName+"/eviction", "", ev, nil)
}

// Pods lists the names of the running pods with a label selector.
func Pods(ctx context.Context, c *Client, namespace, selector string) ([]string, error) {
	var l struct {
		Items []pod `json:"items"`
	}
	if err := c.Do(ctx, "GET", "/api/v1/namespaces/"+namespace+"/pods?labelSelector="+url.QueryEscape(selector), "", nil, &l); err != nil {
		return nil, err
	}
	var out []string
	for _, p := range l.Items {
		if p.Status.Phase == "Running" && p.Metadata.DeletionTimestamp == "" {
			out = append(out, p.Metadata.Name)
		}
	}
	return out, nil
}
