//go:build !linux

package main

import (
	"errors"
	"os"
	"syscall"
	"time"
)

var errNoProc = errors.New("needs Linux /proc")

func bindNoPort(network, address string, rc syscall.RawConn) error { return nil }
func raiseNoFile() (uint64, error)                                 { return 0, errNoProc }
func procCPU(pid int) (time.Duration, error)                       { return 0, errNoProc }
func procStatus(pid int, field string) (int64, error)              { return 0, errNoProc }
func selfUsage() (time.Duration, int64)                            { return 0, 0 }
func machineBusy() (time.Duration, error)                          { return 0, errNoProc }

// allocated is the file's size (its blocks are not portable).
func allocated(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}
