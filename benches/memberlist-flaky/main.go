// mlflaky runs one HashiCorp memberlist member and logs, as JSON lines with
// wall-clock timestamps, everything it sees of the others: EventDelegate
// callbacks (join/leave/update), memberlist's own log lines, and every state
// change of every member in its view (read from memberlist's node table every
// -poll under memberlist's own lock, since the library reports neither
// alive -> suspect nor suspect -> alive to a delegate).
//
// It is the member side of run.py (benches/memberlist-flaky); it does not
// change memberlist's behaviour.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/hashicorp/memberlist"
)

// nodeStateMirror has the layout of memberlist's unexported nodeState
// (memberlist 0.2.2, state.go): read-only use, under memberlist's nodeLock.
type nodeStateMirror struct {
	memberlist.Node
	Incarnation uint32
	State       memberlist.NodeStateType
	StateChange time.Time
}

type out struct {
	mu sync.Mutex
	w  *bufio.Writer
}

func (o *out) emit(rec map[string]interface{}) {
	rec["t"] = float64(time.Now().UnixNano()) / 1e9
	b, _ := json.Marshal(rec)
	o.mu.Lock()
	o.w.Write(b)
	o.w.WriteByte('\n')
	o.mu.Unlock()
}

func (o *out) flush() {
	o.mu.Lock()
	o.w.Flush()
	o.mu.Unlock()
}

// logWriter turns memberlist's log lines into records.
type logWriter struct{ o *out }

func (l logWriter) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		if line != "" {
			l.o.emit(map[string]interface{}{"kind": "log", "line": line})
		}
	}
	return len(p), nil
}

// events is the EventDelegate. memberlist calls it with its node lock held:
// it only records.
type events struct{ o *out }

func (e events) NotifyJoin(n *memberlist.Node) {
	e.o.emit(map[string]interface{}{"kind": "event", "ev": "join", "node": n.Name})
}
func (e events) NotifyLeave(n *memberlist.Node) {
	e.o.emit(map[string]interface{}{"kind": "event", "ev": "leave", "node": n.Name})
}
func (e events) NotifyUpdate(n *memberlist.Node) {
	e.o.emit(map[string]interface{}{"kind": "event", "ev": "update", "node": n.Name})
}

var stateName = map[memberlist.NodeStateType]string{
	memberlist.StateAlive:   "alive",
	memberlist.StateSuspect: "suspect",
	memberlist.StateDead:    "dead",
	memberlist.StateLeft:    "left",
}

type seen struct {
	state  memberlist.NodeStateType
	change time.Time
	inc    uint32
}

func main() {
	name := flag.String("name", "", "member name")
	bind := flag.String("bind", "127.0.0.1", "bind address")
	port := flag.Int("port", 7001, "UDP+TCP port")
	seeds := flag.String("seeds", "", "comma-separated host:port to join")
	timings := flag.String("timings", "test", "test (probe 300ms/timeout 100ms/gossip 100ms/push-pull 5s) or lan (DefaultLANConfig)")
	outPath := flag.String("out", "", "JSON-lines output file")
	poll := flag.Duration("poll", 5*time.Millisecond, "how often the node table is read")
	rejoin := flag.Duration("rejoin", 0, "if > 0: this often, join the seeds again when one of them is not in "+
		"Members() (memberlist has no reconnect of its own; Serf adds one). 0: join once at start")
	flag.Parse()

	f, err := os.Create(*outPath)
	if err != nil {
		log.Fatal(err)
	}
	o := &out{w: bufio.NewWriterSize(f, 1<<16)}

	c := memberlist.DefaultLANConfig()
	c.Name = *name
	c.BindAddr = *bind
	c.BindPort = *port
	c.AdvertiseAddr = *bind
	c.AdvertisePort = *port
	switch *timings {
	case "test":
		c.ProbeInterval = 300 * time.Millisecond
		c.ProbeTimeout = 100 * time.Millisecond
		c.GossipInterval = 100 * time.Millisecond
		c.PushPullInterval = 5 * time.Second
	case "lan":
	default:
		log.Fatalf("unknown -timings %q", *timings)
	}
	c.Events = events{o}
	c.Logger = log.New(logWriter{o}, "", 0)
	o.emit(map[string]interface{}{"kind": "config", "name": c.Name, "port": c.BindPort,
		"probe_interval_ms": c.ProbeInterval.Milliseconds(), "probe_timeout_ms": c.ProbeTimeout.Milliseconds(),
		"gossip_interval_ms": c.GossipInterval.Milliseconds(), "push_pull_interval_ms": c.PushPullInterval.Milliseconds(),
		"suspicion_mult": c.SuspicionMult, "suspicion_max_timeout_mult": c.SuspicionMaxTimeoutMult,
		"awareness_max_multiplier": c.AwarenessMaxMultiplier, "indirect_checks": c.IndirectChecks,
		"tcp_timeout_ms": c.TCPTimeout.Milliseconds(), "disable_tcp_pings": c.DisableTcpPings,
		"gossip_to_the_dead_ms": c.GossipToTheDeadTime.Milliseconds(), "poll_ms": poll.Milliseconds()})

	m, err := memberlist.Create(c)
	if err != nil {
		log.Fatal(err)
	}

	// memberlist's node table, read under its own lock.
	mv := reflect.ValueOf(m).Elem()
	lock := (*sync.RWMutex)(unsafe.Pointer(mv.FieldByName("nodeLock").UnsafeAddr()))
	nodes := (*[]*nodeStateMirror)(unsafe.Pointer(mv.FieldByName("nodes").UnsafeAddr()))
	if mv.FieldByName("nodes").Type().Elem().Elem().Size() != reflect.TypeOf(nodeStateMirror{}).Size() {
		log.Fatal("memberlist's nodeState does not match the mirror")
	}

	done := make(chan struct{})
	go func() {
		last := map[string]seen{}
		tick := time.NewTicker(*poll)
		flushTick := time.NewTicker(200 * time.Millisecond)
		for {
			select {
			case <-done:
				return
			case <-flushTick.C:
				o.flush()
			case <-tick.C:
				lock.RLock()
				now := map[string]seen{}
				for _, n := range *nodes {
					now[n.Name] = seen{n.State, n.StateChange, n.Incarnation}
				}
				lock.RUnlock()
				for nm, s := range now {
					p, ok := last[nm]
					if !ok {
						o.emit(map[string]interface{}{"kind": "state", "node": nm, "from": "none", "to": stateName[s.state], "inc": s.inc,
							"change": float64(s.change.UnixNano()) / 1e9})
					} else if p.state != s.state || !p.change.Equal(s.change) {
						o.emit(map[string]interface{}{"kind": "state", "node": nm, "from": stateName[p.state], "to": stateName[s.state], "inc": s.inc,
							"change": float64(s.change.UnixNano()) / 1e9, "hidden": p.state == s.state})
					}
				}
				for nm := range last {
					if _, ok := now[nm]; !ok {
						o.emit(map[string]interface{}{"kind": "state", "node": nm, "from": stateName[last[nm].state], "to": "reaped"})
					}
				}
				last = now
			}
		}
	}()

	if *seeds != "" {
		var list []string
		for _, s := range strings.Split(*seeds, ",") {
			if s != fmt.Sprintf("%s:%d", *bind, *port) {
				list = append(list, s)
			}
		}
		for len(list) > 0 {
			n, err := m.Join(list)
			o.emit(map[string]interface{}{"kind": "join", "contacted": n, "err": fmt.Sprint(err)})
			if n > 0 {
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
	}

	if *rejoin > 0 && *seeds != "" {
		go func() {
			for range time.Tick(*rejoin) {
				alive := map[string]bool{}
				for _, n := range m.Members() {
					alive[fmt.Sprintf("%s:%d", n.Addr, n.Port)] = true
				}
				var missing []string
				for _, s := range strings.Split(*seeds, ",") {
					if s != fmt.Sprintf("%s:%d", *bind, *port) && !alive[s] {
						missing = append(missing, s)
					}
				}
				if len(missing) > 0 {
					n, err := m.Join(missing)
					o.emit(map[string]interface{}{"kind": "rejoin", "seeds": missing, "contacted": n, "err": fmt.Sprint(err)})
				}
			}
		}()
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	close(done)
	o.emit(map[string]interface{}{"kind": "exit"})
	o.flush()
	f.Close()
	m.Shutdown()
}
