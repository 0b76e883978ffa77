// cpu-peers runs N HashiCorp memberlist members in one Go process on
// loopback, for the CPU side by side of issue 16 §1
// (benches/scripts/cpu_side_by_side.py): memberlist.DefaultLANConfig(),
// plaintext, each member on its own port, all joining through member 0. Once
// every member sees all N, a warm-up runs, then a measured window; it prints
// one JSON line with the process CPU (getrusage RUSAGE_SELF, user + system)
// and the bytes and UDP datagrams sent, each per member-second of the window.
//
// Bytes are counted by wrapping memberlist's own NetTransport (memberlist
// keeps no byte counters of its own): every UDP payload written, and every
// byte written to a TCP stream (push-pull, TCP fallback pings) by either
// side. TCP/IP headers and TCP's own segments are not counted, as neither
// side counts IP and UDP headers.
//
// Built offline in GOPATH mode against Debian's
// golang-github-hashicorp-memberlist-dev (memberlist 0.2.2).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/memberlist"
)

// counters are one member's totals, read at the window's edges.
type counters struct {
	udpBytes, udpPackets, tcpBytes int64
	// TCP connections this member opened (push-pull, TCP fallback pings).
	tcpConns int64
}

// countingTransport is memberlist's NetTransport, counting what it sends.
// It overrides every method through which memberlist writes.
type countingTransport struct {
	*memberlist.NetTransport
	c       *counters
	streams chan net.Conn
}

func newCountingTransport(nt *memberlist.NetTransport, c *counters) *countingTransport {
	t := &countingTransport{NetTransport: nt, c: c, streams: make(chan net.Conn)}
	go func() {
		for conn := range nt.StreamCh() {
			t.streams <- countingConn{conn, c}
		}
	}()
	return t
}

func (t *countingTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

func (t *countingTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	when, err := t.NetTransport.WriteToAddress(b, a)
	if err == nil {
		atomic.AddInt64(&t.c.udpBytes, int64(len(b)))
		atomic.AddInt64(&t.c.udpPackets, 1)
	}
	return when, err
}

func (t *countingTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

func (t *countingTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	conn, err := t.NetTransport.DialAddressTimeout(a, timeout)
	if err != nil {
		return nil, err
	}
	atomic.AddInt64(&t.c.tcpConns, 1)
	return countingConn{conn, t.c}, nil
}

func (t *countingTransport) StreamCh() <-chan net.Conn { return t.streams }

// countingConn counts the bytes written to a TCP stream.
type countingConn struct {
	net.Conn
	c *counters
}

func (c countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	atomic.AddInt64(&c.c.tcpBytes, int64(n))
	return n, err
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

func sum(cs []*counters) counters {
	var s counters
	for _, c := range cs {
		s.udpBytes += atomic.LoadInt64(&c.udpBytes)
		s.udpPackets += atomic.LoadInt64(&c.udpPackets)
		s.tcpBytes += atomic.LoadInt64(&c.tcpBytes)
		s.tcpConns += atomic.LoadInt64(&c.tcpConns)
	}
	return s
}

func main() {
	n := flag.Int("members", 32, "cluster size")
	duration := flag.Float64("duration", 120, "length of the measured window, seconds (after join and warm-up)")
	warmup := flag.Float64("warmup", 30, "seconds of steady traffic before the window opens")
	procs := flag.Int("procs", 2, "GOMAXPROCS (2: as the 2 tokio worker threads of the Rust peers)")
	flag.Parse()
	if *n < 2 {
		fmt.Fprintln(os.Stderr, "-members must be at least 2")
		os.Exit(2)
	}
	runtime.GOMAXPROCS(*procs)

	members := make([]*memberlist.Memberlist, *n)
	cs := make([]*counters, *n)
	var seed string
	for i := range members {
		nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
			BindAddrs: []string{"127.0.0.1"},
			BindPort:  0,
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, "transport:", err)
			os.Exit(1)
		}
		port := nt.GetAutoBindPort()
		cs[i] = &counters{}
		conf := memberlist.DefaultLANConfig()
		conf.Name = fmt.Sprintf("m-%d", i)
		conf.BindAddr = "127.0.0.1"
		conf.BindPort = port
		conf.AdvertiseAddr = "127.0.0.1"
		conf.AdvertisePort = port
		conf.Transport = newCountingTransport(nt, cs[i])
		// The Rust peers log nothing either.
		conf.LogOutput = io.Discard
		m, err := memberlist.Create(conf)
		if err != nil {
			fmt.Fprintln(os.Stderr, "create:", err)
			os.Exit(1)
		}
		members[i] = m
		if i == 0 {
			seed = fmt.Sprintf("127.0.0.1:%d", port)
		} else if _, err := m.Join([]string{seed}); err != nil {
			fmt.Fprintln(os.Stderr, "join:", err)
			os.Exit(1)
		}
	}
	joining := time.Now()
	for {
		all := true
		for _, m := range members {
			if m.NumMembers() != *n {
				all = false
				break
			}
		}
		if all {
			break
		}
		if time.Since(joining) > 120*time.Second {
			fmt.Fprintln(os.Stderr, "the cluster did not converge within 120 s")
			os.Exit(1)
		}
		time.Sleep(100 * time.Millisecond)
	}
	joinS := time.Since(joining).Seconds()
	time.Sleep(time.Duration(*warmup * float64(time.Second)))

	// The measured window.
	before := sum(cs)
	cpuStart := cpuSeconds()
	windowStart := time.Now()
	time.Sleep(time.Duration(*duration * float64(time.Second)))
	cpu := cpuSeconds() - cpuStart
	windowS := time.Since(windowStart).Seconds()
	after := sum(cs)
	minSeen := *n
	for _, m := range members {
		if k := m.NumMembers(); k < minSeen {
			minSeen = k
		}
	}
	memberS := float64(*n) * windowS
	per := func(x int64) float64 { return float64(x) / memberS }
	report := map[string]interface{}{
		"implementation":                   "memberlist",
		"members":                          *n,
		"duration_s":                       windowS,
		"warmup_s":                         *warmup,
		"join_s":                           joinS,
		"cpu_s_per_member_per_s":           cpu / memberS,
		"bytes_per_member_per_s":           per(after.udpBytes + after.tcpBytes - before.udpBytes - before.tcpBytes),
		"udp_bytes_per_member_per_s":       per(after.udpBytes - before.udpBytes),
		"tcp_bytes_per_member_per_s":       per(after.tcpBytes - before.tcpBytes),
		"packets_per_member_per_s":         per(after.udpPackets - before.udpPackets),
		"tcp_connections_per_member_per_s": per(after.tcpConns - before.tcpConns),
		"min_members_seen_at_end":          minSeen,
		"probe_interval_s":                 memberlist.DefaultLANConfig().ProbeInterval.Seconds(),
		"gomaxprocs":                       runtime.GOMAXPROCS(0),
		"go_version":                       runtime.Version(),
	}
	b, _ := json.Marshal(report)
	fmt.Println(string(b))
	os.Exit(0)
}
