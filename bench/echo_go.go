// echo_go: the Go reference for bench/echo_compare.sh: one goroutine per connection, every
// byte received is sent back (same protocol and flags as examples/echo_*.c). Prints
// "listening on PORT" first. Built and run by echo_compare.sh only when `go` is installed;
// GOMAXPROCS sets the number of OS threads running goroutines.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
)

func main() {
	port := flag.Int("port", 0, "port (0: pick a free one)")
	host := flag.String("host", "127.0.0.1", "address to bind")
	flag.Parse()
	ln, err := net.Listen("tcp", net.JoinHostPort(*host, strconv.Itoa(*port)))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("listening on %d\n", ln.Addr().(*net.TCPAddr).Port)
	os.Stdout.Sync()
	for {
		c, err := ln.Accept()
		if err != nil {
			continue
		}
		go func(c net.Conn) {
			defer c.Close()
			buf := make([]byte, 4096)
			for {
				n, err := c.Read(buf)
				if n > 0 {
					if _, werr := c.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}(c)
	}
}
