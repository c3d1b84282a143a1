//go:build unix

package main

import "syscall"

// raiseNofile lifts the soft RLIMIT_NOFILE to the hard limit (every socket
// is a file descriptor) and reports the limits as found and as left.
// Raising the hard limit itself needs CAP_SYS_RESOURCE, which a container
// rarely has.
func raiseNofile() (was, now nofile, err error) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return was, now, err
	}
	was = nofile{Soft: uint64(r.Cur), Hard: uint64(r.Max)}
	if r.Cur < r.Max {
		r.Cur = r.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
			return was, was, err
		}
	}
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return was, was, err
	}
	return was, nofile{Soft: uint64(r.Cur), Hard: uint64(r.Max)}, nil
}
