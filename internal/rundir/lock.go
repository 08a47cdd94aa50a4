package rundir

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// ErrBusy is Lock's error when another ptb holds the run's lock.
var ErrBusy = errors.New("run directory in use")

// Lock takes the run directory's lock (LockFile, flock), or reports
// (ErrBusy) that another ptb (a retried resume, a scheduler) is already
// working on it. The returned function releases it.
func (d Dir) Lock() (func(), error) {
	f, err := os.OpenFile(d.Path(LockFile), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s is in use by another ptb process; wait for it to end (or stop it) before resuming: %w", d, ErrBusy)
		}
		return nil, fmt.Errorf("lock %s: %w", d.Path(LockFile), err)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
