package none

import "github.com/ptb-dev/ptb/internal/sandbox"

// Name is the backend's name in a job spec (--sandbox none).
const Name = "none"

func init() { sandbox.Register(Name, func() sandbox.Backend { return New() }) }
