//go:build !unix

package main

import "os"

// writableDir reports whether this process may create files in the folder
// dir, by creating and removing one.
func writableDir(dir string) error {
	f, err := os.CreateTemp(dir, ".xmppd-check-*")
	if err != nil {
		return unwrapPath(err)
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}
