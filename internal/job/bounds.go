package job

import (
	"fmt"
	"time"
)

// Bounds caps what the harness reads and writes of what the agent made, so
// that a hostile agent cannot fill the host's disk through the harness or
// stall a stage. Zero fields take the defaults below; Normalize fills them.
type Bounds struct {
	// CollectMaxBytes caps the bytes collect writes (final_model and the
	// workspace snapshot together); CollectMaxFiles caps the entries it
	// visits. final_model going over fails the collect stage with the
	// reason; the snapshot going over stops the snapshot, with a note.
	CollectMaxBytes int64 `json:"collect_max_bytes,omitempty"`
	CollectMaxFiles int   `json:"collect_max_files,omitempty"`
	// TraceMaxLine caps one line of the raw trace, TraceMaxBytes the whole
	// raw trace; over either, the head and tail are kept with a sha256 of
	// what was cut (trace/truncation.json).
	TraceMaxLine  int64 `json:"trace_max_line,omitempty"`
	TraceMaxBytes int64 `json:"trace_max_bytes,omitempty"`
	// AuditTimeout bounds the audit stage; past it the verdict is
	// unverified with the reason, and the job goes on.
	AuditTimeout time.Duration `json:"audit_timeout_ns,omitempty"`
}

// Default bounds: generous for a 4 B model saved in any format (fp32 is
// 16 GB) with its checkpoints, and for a 10-hour trace.
const (
	DefaultCollectMaxBytes = 64 << 30
	DefaultCollectMaxFiles = 100_000
	DefaultTraceMaxLine    = 64 << 20
	DefaultTraceMaxBytes   = 4 << 30
	DefaultAuditTimeout    = 3 * time.Hour
)

// WithDefaults returns b with zero fields set to the defaults.
func (b Bounds) WithDefaults() Bounds {
	if b.CollectMaxBytes == 0 {
		b.CollectMaxBytes = DefaultCollectMaxBytes
	}
	if b.CollectMaxFiles == 0 {
		b.CollectMaxFiles = DefaultCollectMaxFiles
	}
	if b.TraceMaxLine == 0 {
		b.TraceMaxLine = DefaultTraceMaxLine
	}
	if b.TraceMaxBytes == 0 {
		b.TraceMaxBytes = DefaultTraceMaxBytes
	}
	if b.AuditTimeout == 0 {
		b.AuditTimeout = DefaultAuditTimeout
	}
	return b
}

func (b Bounds) validate() error {
	switch {
	case b.CollectMaxBytes < 0:
		return fmt.Errorf("job: bounds.collect_max_bytes must be positive, got %d", b.CollectMaxBytes)
	case b.CollectMaxFiles < 0:
		return fmt.Errorf("job: bounds.collect_max_files must be positive, got %d", b.CollectMaxFiles)
	case b.TraceMaxLine < 0 || b.TraceMaxLine > 0 && b.TraceMaxLine < 4096:
		return fmt.Errorf("job: bounds.trace_max_line must be at least 4096 bytes, got %d", b.TraceMaxLine)
	case b.TraceMaxBytes < 0 || b.TraceMaxBytes > 0 && b.TraceMaxBytes < 1<<20:
		return fmt.Errorf("job: bounds.trace_max_bytes must be at least 1 MiB, got %d", b.TraceMaxBytes)
	case b.AuditTimeout < 0:
		return fmt.Errorf("job: bounds.audit_timeout_ns must be positive, got %d", b.AuditTimeout)
	}
	return nil
}
