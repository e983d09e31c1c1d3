// Command loadgen drives tradewire (or the Node baseline) with simulated
// Socket.IO clients and prints one JSON result line per run.
//
//	go run ./bench/cmd/loadgen -scenario idle -conns 1000 -redis redis://127.0.0.1:6379 -url http://127.0.0.1:3000
//	go run ./bench/cmd/loadgen report -node node.jsonl -tradewire tradewire.jsonl -meta meta.json
//
// See bench/README.md for every scenario.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/tradewire/tradewire/bench/loadgen"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "report" {
		if err := loadgen.ReportMain(os.Args[2:], os.Stdout, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen report:", err)
			os.Exit(2)
		}
		return
	}
	opts, err := loadgen.ParseFlags(os.Args[1:], os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if opts.Worker {
		if err := loadgen.ServeWorker(ctx, os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen worker:", err)
			os.Exit(1)
		}
		return
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	if exe, err := os.Executable(); err == nil {
		opts.WorkerCmd = []string{exe, "-worker"}
	}
	res, err := loadgen.Run(ctx, opts.Config, os.Stderr)
	if res != nil {
		_ = json.NewEncoder(os.Stdout).Encode(res)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}
