package bwrap

import "github.com/ptb-dev/ptb/internal/sandbox"

// Name is the backend's name in a job spec (--sandbox bwrap).
const Name = "bwrap"

func init() { sandbox.Register(Name, func() sandbox.Backend { return New() }) }
