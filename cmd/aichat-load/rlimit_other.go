//go:build !unix

package main

import "errors"

func raiseNofile() (was, now nofile, err error) {
	return was, now, errors.New("RLIMIT_NOFILE is not available on this system")
}
