//go:build unix

package main

import "syscall"

// writableDir reports whether this process may create files in the folder
// dir (access(2) with W_OK|X_OK: permissions, ACLs and read-only mounts).
func writableDir(dir string) error {
	return syscall.Access(dir, 0x2|0x1) // W_OK|X_OK
}
