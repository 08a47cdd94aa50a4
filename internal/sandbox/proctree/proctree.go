// Package proctree finds and signals the process tree under a pid, by
// reading /proc. It is what lets a sandbox backend stop every descendant of
// an agent, not only the process it started.
package proctree

import (
	"bytes"
	"os"
	"strconv"
	"syscall"
	"time"
)

// Proc is one entry of /proc.
type Proc struct {
	PID, PPID, PGID int
	Comm            string
	Start           uint64 // start time in clock ticks since boot; tells a reused pid apart
}

// List reads every process from /proc. Processes that vanish while being
// read are skipped.
func List() []Proc {
	d, err := os.Open("/proc")
	if err != nil {
		return nil
	}
	defer d.Close()
	names, _ := d.Readdirnames(-1)
	out := make([]Proc, 0, len(names))
	for _, n := range names {
		pid, err := strconv.Atoi(n)
		if err != nil {
			continue
		}
		if p, ok := read(pid); ok {
			out = append(out, p)
		}
	}
	return out
}

func read(pid int) (Proc, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return Proc{}, false
	}
	// pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses.
	open := bytes.IndexByte(b, '(')
	end := bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return Proc{}, false
	}
	f := bytes.Fields(b[end+1:])
	if len(f) < 3 {
		return Proc{}, false
	}
	ppid, _ := strconv.Atoi(string(f[1]))
	pgid, _ := strconv.Atoi(string(f[2]))
	var start uint64
	if len(f) > 19 {
		start, _ = strconv.ParseUint(string(f[19]), 10, 64)
	}
	return Proc{PID: pid, PPID: ppid, PGID: pgid, Comm: string(b[open+1 : end]), Start: start}, true
}

// Descendants returns every live descendant of root (not root itself), plus
// any process in the process group pgid when pgid > 0 (which catches
// orphans that were reparented away from the tree but kept the group).
func Descendants(root, pgid int) []Proc {
	all := List()
	children := map[int][]Proc{}
	for _, p := range all {
		children[p.PPID] = append(children[p.PPID], p)
	}
	seen := map[int]bool{root: true}
	var out []Proc
	queue := []int{root}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		for _, c := range children[pid] {
			if !seen[c.PID] {
				seen[c.PID] = true
				out = append(out, c)
				queue = append(queue, c.PID)
			}
		}
	}
	if pgid > 0 {
		for _, p := range all {
			if p.PGID == pgid && !seen[p.PID] {
				seen[p.PID] = true
				out = append(out, p)
			}
		}
	}
	return out
}

// Signal sends sig to each process that still exists with the same start
// time, so a pid reused by an unrelated process is left alone.
func Signal(ps []Proc, sig syscall.Signal) {
	for _, p := range ps {
		if cur, ok := read(p.PID); ok && (p.Start == 0 || cur.Start == p.Start) {
			syscall.Kill(p.PID, sig)
		}
	}
}

// Alive reports whether pid exists and is not a zombie.
func Alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	end := bytes.LastIndexByte(b, ')')
	return end < 0 || end+2 >= len(b) || b[end+2] != 'Z'
}

// WaitGone polls until none of ps is alive or d has passed; it reports
// whether all are gone.
func WaitGone(ps []Proc, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		alive := false
		for _, p := range ps {
			if Alive(p.PID) {
				alive = true
				break
			}
		}
		if !alive {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}
