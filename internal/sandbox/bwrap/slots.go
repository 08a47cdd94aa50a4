package bwrap

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// DefaultSlotDir holds the lock files that give each concurrent sandbox
// of a root harness its own uid.
const DefaultSlotDir = "/run/ptb-slots"

// MaxSlots bounds the concurrent sandboxes of one host (and so the uids
// used, DefaultDrop.UID to DefaultDrop.UID+MaxSlots-1).
const MaxSlots = 1024

// slot is a held uid slot: an flock on its file, which the kernel drops
// when the harness dies.
type slot struct {
	n int
	f *os.File
}

type slotPool struct{ dir string }

func (b *Backend) slots() slotPool {
	if b.SlotDir != "" {
		return slotPool{b.SlotDir}
	}
	return slotPool{DefaultSlotDir}
}

// acquire takes the lowest free slot.
func (s slotPool) acquire() (*slot, error) {
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return nil, fmt.Errorf("uid slots: %w", err)
	}
	for n := 0; n < MaxSlots; n++ {
		f, err := os.OpenFile(filepath.Join(s.dir, "slot-"+strconv.Itoa(n)+".lock"), os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("uid slots: %w", err)
		}
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return &slot{n: n, f: f}, nil
		}
		f.Close()
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("uid slots: lock %s: %w", f.Name(), err)
		}
	}
	return nil, fmt.Errorf("uid slots: all %d slots in %s are taken", MaxSlots, s.dir)
}

func (s *slot) release() {
	if s != nil && s.f != nil {
		s.f.Close() // drops the lock
		s.f = nil
	}
}
