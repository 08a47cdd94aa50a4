// Package relay is the one channel between a sandbox and the harness. A
// sandbox has a network namespace of its own with nothing but loopback; a
// unix socket from the run directory is bind-mounted into it, and the ptb
// binary, started inside before the real process (`ptb sandbox-init`),
// relays between TCP ports on the sandbox's 127.0.0.1 and that socket. The
// gateway (sandbox to harness) and the sandboxed inference server (harness
// to sandbox) both use it, whatever the sandbox backend.
package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Endpoint is one end of a relay: a TCP address or a unix socket path.
type Endpoint struct {
	Network string // "tcp" or "unix"
	Addr    string // host:port, or an absolute path
}

// String formats e as ParseEndpoint reads it.
func (e Endpoint) String() string { return e.Network + ":" + e.Addr }

// ParseEndpoint reads "tcp:HOST:PORT" or "unix:/abs/path".
func ParseEndpoint(s string) (Endpoint, error) {
	network, addr, ok := strings.Cut(s, ":")
	if !ok || addr == "" {
		return Endpoint{}, fmt.Errorf("relay endpoint %q: want tcp:HOST:PORT or unix:/PATH", s)
	}
	switch network {
	case "tcp":
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return Endpoint{}, fmt.Errorf("relay endpoint %q: %v", s, err)
		}
	case "unix":
		if !filepath.IsAbs(addr) {
			return Endpoint{}, fmt.Errorf("relay endpoint %q: the socket path must be absolute", s)
		}
	default:
		return Endpoint{}, fmt.Errorf("relay endpoint %q: unknown network %q (want tcp or unix)", s, network)
	}
	return Endpoint{Network: network, Addr: addr}, nil
}

// Listen opens a listener on e (unix sockets through ListenUnix).
func Listen(e Endpoint) (net.Listener, error) {
	if e.Network == "unix" {
		return ListenUnix(e.Addr)
	}
	return net.Listen(e.Network, e.Addr)
}

// Dial connects to e (unix sockets through DialUnix).
func Dial(ctx context.Context, e Endpoint) (net.Conn, error) {
	if e.Network == "unix" {
		return DialUnix(ctx, e.Addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, e.Network, e.Addr)
}

// Forward is one relay: connections accepted on Listen are relayed to
// Connect.
type Forward struct {
	Listen, Connect Endpoint
}

// ParseForward reads "LISTEN=CONNECT", e.g.
// "tcp:127.0.0.1:18080=unix:/run/ptb/gateway.sock".
func ParseForward(s string) (Forward, error) {
	l, c, ok := strings.Cut(s, "=")
	if !ok {
		return Forward{}, fmt.Errorf("relay forward %q: want LISTEN=CONNECT", s)
	}
	le, err := ParseEndpoint(l)
	if err != nil {
		return Forward{}, err
	}
	ce, err := ParseEndpoint(c)
	if err != nil {
		return Forward{}, err
	}
	return Forward{Listen: le, Connect: ce}, nil
}

// String formats f as ParseForward reads it.
func (f Forward) String() string { return f.Listen.String() + "=" + f.Connect.String() }

// maxSunPath is the longest path bind(2) and connect(2) take directly
// (sun_path is 108 bytes, one for the terminating NUL).
const maxSunPath = 107

// ListenUnix listens on the unix socket path, which may be longer than
// sun_path allows: a long path is reached through /proc/self/fd of its
// directory. An existing socket file at path is replaced (a crashed
// harness leaves one); any other file there is an error. The socket is
// made connectable by every uid (mode 0666), because the sandboxed side
// may run as another user; only the sandbox it is bound into sees it, so
// the directory holding it must not be reachable by others. Closing the
// listener removes the socket file.
func ListenUnix(path string) (net.Listener, error) {
	dir, base := filepath.Split(path)
	dirfd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	defer unix.Close(dirfd)
	var st unix.Stat_t
	switch err := unix.Fstatat(dirfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); {
	case err == nil && st.Mode&unix.S_IFMT == unix.S_IFSOCK:
		if err := unix.Unlinkat(dirfd, base, 0); err != nil {
			return nil, fmt.Errorf("listen %s: remove stale socket: %w", path, err)
		}
	case err == nil:
		return nil, fmt.Errorf("listen %s: a file that is not a socket is in the way", path)
	case !errors.Is(err, unix.ENOENT):
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	name := viaFD(path, dirfd, base)
	l, err := net.Listen("unix", name)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	ul := l.(*net.UnixListener)
	ul.SetUnlinkOnClose(false) // the /proc name dies with dirfd: unlink by the real path
	if err := os.Chmod(name, 0o666); err != nil {
		ul.Close()
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	return &unixListener{UnixListener: ul, path: path}, nil
}

// unixListener removes its socket file on Close, once.
type unixListener struct {
	*net.UnixListener
	path string
	once sync.Once
}

func (l *unixListener) Close() error {
	err := l.UnixListener.Close()
	l.once.Do(func() { removeSocket(l.path) })
	return err
}

// removeSocket removes path if it is still a socket (never whatever may
// have replaced it), reaching long paths through their directory.
func removeSocket(path string) {
	dir, base := filepath.Split(path)
	dirfd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	defer unix.Close(dirfd)
	var st unix.Stat_t
	if unix.Fstatat(dirfd, base, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFSOCK {
		unix.Unlinkat(dirfd, base, 0)
	}
}

// DialUnix connects to the unix socket path, which may be longer than
// sun_path allows.
func DialUnix(ctx context.Context, path string) (net.Conn, error) {
	dir, base := filepath.Split(path)
	name := path
	if len(path) > maxSunPath {
		dirfd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("dial %s: %w", path, err)
		}
		defer unix.Close(dirfd)
		name = viaFD(path, dirfd, base)
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", name)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", path, err)
	}
	return c, nil
}

// viaFD returns path itself when it fits sun_path, else the same file
// named through the open directory dirfd.
func viaFD(path string, dirfd int, base string) string {
	if len(path) <= maxSunPath {
		return path
	}
	return fmt.Sprintf("/proc/self/fd/%d/%s", dirfd, base)
}

// Serve accepts connections on ln until ctx ends or ln is closed, and
// relays each to a connection from dial, both ways, until both sides have
// finished. A failed dial closes the accepted connection. It returns nil
// when ctx ends, else the accept error; it closes ln when it returns and
// waits for the open relays to end.
func Serve(ctx context.Context, ln net.Listener, dial func(context.Context) (net.Conn, error)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("relay accept on %s: %w", ln.Addr(), err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			Pipe(ctx, c, dial)
		}()
	}
}

// Pipe relays c to a connection from dial until both directions end or
// ctx does, then closes both.
func Pipe(ctx context.Context, c net.Conn, dial func(context.Context) (net.Conn, error)) {
	defer c.Close()
	up, err := dial(ctx)
	if err != nil {
		return
	}
	defer up.Close()
	done := make(chan struct{}, 2)
	go func() { copyHalf(up, c); done <- struct{}{} }()
	go func() { copyHalf(c, up); done <- struct{}{} }()
	for range 2 {
		select {
		case <-done:
		case <-ctx.Done():
			return
		}
	}
}

// copyHalf copies src to dst, then half-closes dst's write side (or the
// whole connection when it cannot half-close) so the peer sees EOF.
func copyHalf(dst, src net.Conn) {
	io.Copy(dst, src)
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	} else {
		dst.Close()
	}
}
