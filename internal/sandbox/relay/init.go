package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
)

// Init is the sandbox's first process (`ptb sandbox-init`): it opens every
// forward's listener, so each is ready before the child runs, starts argv
// as its child with the given stdio and environment, relays while the
// child runs, passes SIGTERM, SIGINT and SIGHUP on to the child, and
// returns the child's exit status (128+n when signal n ended it). Setup
// errors are written to stderr and returned as status 127, as a shell
// does for a command it cannot run.
func Init(ctx context.Context, forwards []Forward, argv []string, env []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(argv) == 0 {
		fmt.Fprintln(stderr, "ptb sandbox-init: no command to run")
		return 127
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	for _, f := range forwards {
		l, err := Listen(f.Listen)
		if err != nil {
			fmt.Fprintf(stderr, "ptb sandbox-init: forward %s: %v\n", f, err)
			return 127
		}
		listeners = append(listeners, l)
		go Serve(ctx, l, func(ctx context.Context) (net.Conn, error) { return Dial(ctx, f.Connect) })
	}

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)

	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(stderr, "ptb sandbox-init: %v\n", err)
		return 127
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case s := <-sigs:
			cmd.Process.Signal(s)
		case err := <-done:
			return status(cmd, err)
		}
	}
}

// status turns how the child ended into an exit status.
func status(cmd *exec.Cmd, err error) int {
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return 127
	}
	return cmd.ProcessState.ExitCode()
}
