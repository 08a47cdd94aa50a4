package kube

import "encoding/json"

// The few Kubernetes types the executor writes and reads, as plain JSON
// structs: kubectl does the talking, so ptb carries no client-go (about
// 35 MB of binary) for one Job a run.

type meta struct {
	Name              string            `json:"name,omitempty"`
	Namespace         string            `json:"namespace,omitempty"`
	Labels            map[string]string `json:"labels,omitempty"`
	Annotations       map[string]string `json:"annotations,omitempty"`
	DeletionTimestamp string            `json:"deletionTimestamp,omitempty"`
	OwnerReferences   []ownerRef        `json:"ownerReferences,omitempty"`
	CreationTimestamp string            `json:"creationTimestamp,omitempty"`
}

type ownerRef struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
}

type object struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   meta   `json:"metadata"`
}

type list struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Items      []any  `json:"items"`
}

type jobManifest struct {
	object
	Spec jobSpec `json:"spec"`
}

type jobSpec struct {
	BackoffLimit     *int              `json:"backoffLimit,omitempty"`
	PodFailurePolicy *podFailurePolicy `json:"podFailurePolicy,omitempty"`
	Template         podTemplate       `json:"template"`
}

type podFailurePolicy struct {
	Rules []podFailureRule `json:"rules"`
}

type podFailureRule struct {
	Action          string                `json:"action"`
	OnExitCodes     *onExitCodes          `json:"onExitCodes,omitempty"`
	OnPodConditions []onPodConditionMatch `json:"onPodConditions,omitempty"`
}

type onExitCodes struct {
	ContainerName string `json:"containerName,omitempty"`
	Operator      string `json:"operator"`
	Values        []int  `json:"values"`
}

type onPodConditionMatch struct {
	Type   string `json:"type"`
	Status string `json:"status"`
}

type podTemplate struct {
	Metadata meta    `json:"metadata"`
	Spec     podSpec `json:"spec"`
}

type podSpec struct {
	RestartPolicy                 string            `json:"restartPolicy"`
	TerminationGracePeriodSeconds *int64            `json:"terminationGracePeriodSeconds,omitempty"`
	ServiceAccountName            string            `json:"serviceAccountName,omitempty"`
	NodeSelector                  map[string]string `json:"nodeSelector,omitempty"`
	Containers                    []container       `json:"containers"`
	Volumes                       []volume          `json:"volumes,omitempty"`
}

type container struct {
	Name         string        `json:"name"`
	Image        string        `json:"image"`
	Command      []string      `json:"command"`
	Env          []envVar      `json:"env,omitempty"`
	Resources    resources     `json:"resources,omitempty"`
	VolumeMounts []volumeMount `json:"volumeMounts,omitempty"`
}

type envVar struct {
	Name      string     `json:"name"`
	Value     string     `json:"value,omitempty"`
	ValueFrom *envSource `json:"valueFrom,omitempty"`
}

type envSource struct {
	SecretKeyRef *secretKeyRef `json:"secretKeyRef,omitempty"`
}

type secretKeyRef struct {
	Name string `json:"name"`
	Key  string `json:"key"`
}

type resources struct {
	Limits   map[string]string `json:"limits,omitempty"`
	Requests map[string]string `json:"requests,omitempty"`
}

type volumeMount struct {
	Name      string `json:"name"`
	MountPath string `json:"mountPath"`
}

type volume struct {
	Name                  string    `json:"name"`
	PersistentVolumeClaim *claimRef `json:"persistentVolumeClaim,omitempty"`
}

type claimRef struct {
	ClaimName string `json:"claimName"`
}

// What List reads back.

type jobStatus struct {
	Active     int         `json:"active"`
	Succeeded  int         `json:"succeeded"`
	Failed     int         `json:"failed"`
	Ready      *int        `json:"ready"`
	Conditions []condition `json:"conditions"`
}

type condition struct {
	Type    string `json:"type"`
	Status  string `json:"status"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

type podStatus struct {
	Phase             string            `json:"phase"`
	Reason            string            `json:"reason"`
	Message           string            `json:"message"`
	Conditions        []condition       `json:"conditions"`
	ContainerStatuses []containerStatus `json:"containerStatuses"`
}

type containerStatus struct {
	Name  string `json:"name"`
	State struct {
		Waiting *struct {
			Reason string `json:"reason"`
		} `json:"waiting"`
		Terminated *struct {
			ExitCode int    `json:"exitCode"`
			Reason   string `json:"reason"`
		} `json:"terminated"`
	} `json:"state"`
}

// item is one object of `kubectl get jobs,pods -o json`.
type item struct {
	Kind     string `json:"kind"`
	Metadata meta   `json:"metadata"`
	Spec     struct {
		NodeName string `json:"nodeName"`
	} `json:"spec"`
	Status json.RawMessage `json:"status"`
}
