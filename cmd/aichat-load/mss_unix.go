//go:build unix

package main

import "syscall"

// setMSS asks for a maximum segment size on a socket before it connects:
// the SYN carries it and the server's send buffer autotuning scales with
// it. Loopback's own MSS is 64 KiB, which lets the server buffer MiBs for
// a client that stopped reading; 1460 is what an Ethernet client offers.
func setMSS(c syscall.RawConn, mss int) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_MAXSEG, mss)
	})
	if err != nil {
		return err
	}
	return serr
}
