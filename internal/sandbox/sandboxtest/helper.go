// Package sandboxtest is the contract suite every sandbox backend passes,
// and the misbehaving-agent helper it runs: the test binary re-executes
// itself inside the sandbox with PTB_SANDBOXTEST_HELPER set to a mode.
package sandboxtest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ptb-dev/ptb/internal/sandbox"
)

// HelperEnv selects the helper mode in a re-executed test binary.
const HelperEnv = "PTB_SANDBOXTEST_HELPER"

// HelperMain runs the helper when the process was started as one and then
// exits; otherwise it returns. Call it first in TestMain. newBackend is
// the backend the child harness of Run's DiesWithHarness check starts its
// process with: the constructor the package gives Run (nil where the
// package does not run the suite).
func HelperMain(newBackend func() sandbox.Backend) {
	if enc, ok := os.LookupEnv(HarnessEnv); ok {
		os.Exit(harnessMain(enc, os.Getenv(HarnessBackendEnv), newBackend))
	}
	mode, ok := os.LookupEnv(HelperEnv)
	if !ok {
		return
	}
	os.Exit(helper(mode, os.Args[1:]))
}

// helper implements the modes. args[0] is a marker the suite uses to find
// the helper's processes on the host.
func helper(mode string, args []string) int {
	name, arg, _ := strings.Cut(mode, ":")
	switch name {
	case "exit":
		n, _ := strconv.Atoi(arg)
		fmt.Println("exiting with", n)
		return n
	case "echo":
		fmt.Fprintln(os.Stdout, "to stdout")
		fmt.Fprintln(os.Stderr, "to stderr")
		return 0
	case "env":
		for _, kv := range os.Environ() {
			fmt.Println(kv)
		}
		wd, _ := os.Getwd()
		fmt.Println("PWD=" + wd)
		return 0
	case "sleep":
		d, _ := time.ParseDuration(arg)
		fmt.Println("sleeping", d)
		time.Sleep(d)
		return 0
	case "hang":
		fmt.Println("hanging")
		time.Sleep(time.Hour)
		return 0
	case "ignore-term":
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("ignoring SIGTERM")
		time.Sleep(time.Hour)
		return 0
	case "fork":
		// Three grandchildren in new sessions that ignore SIGTERM, then hang.
		exe, _ := os.Executable()
		for i := 0; i < 3; i++ {
			c := exec.Command(exe, args...)
			c.Env = append(os.Environ(), HelperEnv+"=ignore-term")
			c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
			if err := c.Start(); err != nil {
				fmt.Fprintln(os.Stderr, "fork:", err)
				return 3
			}
		}
		fmt.Println("forked")
		time.Sleep(time.Hour)
		return 0
	case "flood":
		// As fast as it can: n MiB of numbered lines on stdout, and a line
		// on stderr every 1000 lines.
		n, _ := strconv.Atoi(arg)
		Flood(os.Stdout, os.Stderr, n)
		return 0
	case "bigline":
		// A 20 MiB line, a line of invalid UTF-8, and a last line without
		// a newline: output a harness must keep byte for byte.
		os.Stdout.Write(BigOutput())
		return 0
	case "write":
		if err := os.WriteFile(arg, []byte("x"), 0o644); err != nil {
			fmt.Println("write failed:", err)
			return 3
		}
		fmt.Println("wrote", arg)
		return 0
	case "readfile":
		b, err := os.ReadFile(arg)
		if err != nil {
			fmt.Println("readfile failed:", err)
			return 3
		}
		fmt.Println("read", len(b), "bytes")
		return 0
	case "read":
		if _, err := os.ReadDir(arg); err != nil {
			fmt.Println("read failed:", err)
			return 3
		}
		entries, _ := os.ReadDir(arg)
		fmt.Println("entries", len(entries))
		if len(entries) == 0 {
			return 4
		}
		return 0
	case "connect":
		// Connect to a unix socket on the host.
		c, err := net.DialTimeout("unix", arg, 2*time.Second)
		if err != nil {
			fmt.Println("connect failed:", err)
			return 3
		}
		c.Close()
		fmt.Println("connected to", arg)
		return 0
	case "forkbomb":
		// Processes without end, each holding on.
		c := exec.Command("/bin/sh", "-c", `while :; do sleep 1000 & done`)
		c.Stdout, c.Stderr = os.Stdout, os.Stderr
		err := c.Run()
		fmt.Println("fork bomb ended:", err)
		return 0
	case "memhog":
		// Allocate and touch arg MiB, a MiB at a time.
		n, _ := strconv.Atoi(arg)
		var keep [][]byte
		for i := 0; i < n; i++ {
			b := make([]byte, 1<<20)
			for j := 0; j < len(b); j += 4096 {
				b[j] = 1
			}
			keep = append(keep, b)
		}
		fmt.Println("allocated", len(keep), "MiB")
		return 0
	case "fill":
		// Write into file arg until the write fails; print how much went in.
		f, err := os.Create(arg)
		if err != nil {
			fmt.Println("fill failed:", err)
			return 3
		}
		buf := make([]byte, 1<<20)
		for i := range buf {
			buf[i] = byte(i)
		}
		var total int64
		for total < 4<<30 {
			n, err := f.Write(buf)
			total += int64(n)
			if err != nil {
				fmt.Println("filled", total, "bytes:", err)
				return 0
			}
		}
		fmt.Println("filled", total, "bytes without an error")
		return 5
	case "fillslow":
		// Write 4 MiB every 100 ms into file arg, for up to a minute.
		f, err := os.Create(arg)
		if err != nil {
			fmt.Println("fill failed:", err)
			return 3
		}
		buf := make([]byte, 4<<20)
		for i := range buf {
			buf[i] = byte(i)
		}
		for i := 0; i < 600; i++ {
			if _, err := f.Write(buf); err != nil {
				fmt.Println("fill failed:", err)
				return 3
			}
			f.Sync()
			time.Sleep(100 * time.Millisecond)
		}
		return 0
	case "net":
		ifs, _ := net.Interfaces()
		up := 0
		for _, i := range ifs {
			if i.Flags&net.FlagLoopback == 0 {
				up++
			}
		}
		fmt.Println("non-loopback interfaces", up)
		return up
	}
	fmt.Fprintln(os.Stderr, "unknown helper mode", mode)
	return 2
}

// Flood is what the flood helper writes: n MiB of numbered lines to
// stdout, and a progress line to stderr every 1000 lines.
func Flood(stdout, stderr io.Writer, n int) {
	w := bufio.NewWriterSize(stdout, 1<<20)
	line := make([]byte, 0, 128)
	for i, written := 0, 0; written < n<<20; i++ {
		line = strconv.AppendInt(line[:0], int64(i), 10)
		line = append(line, " the agent floods its output with a long line of text to fill the disk quickly\n"...)
		w.Write(line)
		written += len(line)
		if i%1000 == 0 {
			fmt.Fprintln(stderr, "progress", i)
		}
	}
	w.Flush()
}

// BigOutput is what the bigline helper writes to stdout.
func BigOutput() []byte {
	var b []byte
	b = append(b, `{"type":"big","data":"`...)
	for i := 0; i < 20<<20; i++ {
		b = append(b, 'a'+byte(i%26))
	}
	b = append(b, "\"}\n"...)
	b = append(b, 0xff, 0xfe, 'b', 'a', 'd', 0xc3, 0x28, '\n')
	b = append(b, "no newline at the end"...)
	return b
}
