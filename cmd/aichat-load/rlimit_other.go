//go:build !unix

package main

import "errors"

func raiseNofile() (soft, hard uint64, err error) {
	return 0, 0, errors.New("RLIMIT_NOFILE is not available on this system")
}
