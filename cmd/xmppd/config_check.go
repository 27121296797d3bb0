package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// checkFiles checks what xmppd serve will need from the file system besides
// the config: a data folder it can write (or create) and certificate files it
// can read. It returns notes for the user and the problems found. Run as
// another user than xmppd serve, the answers may differ.
func checkFiles(cfg Config) (notes []string, errs []error) {
	note, err := checkDataDir(cfg.DataDir)
	if err != nil {
		errs = append(errs, err)
	} else if note != "" {
		notes = append(notes, note)
	}
	for i, cc := range cfg.TLS.Certificates {
		for _, f := range []struct{ key, path string }{{"cert", cc.Cert}, {"key", cc.Key}} {
			if err := checkReadable(f.path); err != nil {
				errs = append(errs, fmt.Errorf("tls.certificates[%d].%s: %w", i, f.key, err))
			}
		}
	}
	if cfg.S2S.CAFile != "" {
		if err := checkReadable(cfg.S2S.CAFile); err != nil {
			errs = append(errs, fmt.Errorf("s2s.ca_file: %w", err))
		} else if _, err := peerRoots(cfg.S2S.CAFile); err != nil {
			errs = append(errs, err)
		}
	}
	return notes, errs
}

// checkDataDir checks that dir is a folder this process can write, or, when
// it does not exist yet, that its nearest existing parent is a folder it
// can write (xmppd serve creates the rest). It creates nothing.
func checkDataDir(dir string) (note string, err error) {
	abs := absPath(dir)
	for p := abs; ; {
		fi, err := os.Stat(p)
		switch {
		case err == nil && !fi.IsDir() && p == abs:
			return "", fmt.Errorf("data_dir: %s is not a folder", abs)
		case err == nil && !fi.IsDir():
			return "", fmt.Errorf("data_dir: %s does not exist and cannot be created: %s is not a folder", abs, p)
		case err == nil && p == abs:
			if err := writableDir(p); err != nil {
				return "", fmt.Errorf("data_dir: %s is not writable%s: %w", abs, byWhom(), err)
			}
			db := filepath.Join(abs, "xmppd.db")
			if _, serr := os.Stat(db); serr == nil {
				f, err := os.OpenFile(db, os.O_RDWR, 0)
				if err != nil {
					return "", fmt.Errorf("data_dir: the database %s cannot be opened for writing%s: %w", db, byWhom(), unwrapPath(err))
				}
				f.Close()
			}
			return "", nil
		case err == nil:
			if err := writableDir(p); err != nil {
				return "", fmt.Errorf("data_dir: %s does not exist and cannot be created: %s is not writable%s: %w", abs, p, byWhom(), err)
			}
			return fmt.Sprintf("data folder %s does not exist yet; xmppd serve creates it", abs), nil
		case !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR): // ENOTDIR: a parent is a file
			return "", fmt.Errorf("data_dir: %s: %w", abs, unwrapPath(err))
		}
		parent := filepath.Dir(p)
		if parent == p {
			return "", fmt.Errorf("data_dir: %s: no parent folder exists", abs)
		}
		p = parent
	}
}

// checkReadable reads a byte of the file at path, as loading it will.
func checkReadable(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("cannot read %s: %w", path, unwrapPath(err))
	}
	defer f.Close()
	if _, err := f.Read(make([]byte, 1)); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("cannot read %s: %w", path, unwrapPath(err))
	}
	return nil
}

// unwrapPath drops the *PathError around err: messages name the path already.
func unwrapPath(err error) error {
	if pe, ok := errors.AsType[*fs.PathError](err); ok {
		return pe.Err
	}
	return err
}

// byWhom names the user in messages about permissions.
func byWhom() string {
	if uid := os.Getuid(); uid >= 0 {
		return fmt.Sprintf(" by this user (uid %d)", uid)
	}
	return ""
}
