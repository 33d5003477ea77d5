// Command sqldump prints, as JSON, every SQL statement riskd sends to
// ClickHouse (chstore.SQLDump): migrations, inserts with sample rows, and
// reads with sample arguments and the results those rows imply.
// scripts/chdb-check runs them on a current ClickHouse engine.
//
//	go run ./streams/chstore/sqldump [-db riskd_sqlcheck]
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"

	"riskd/streams/chstore"
)

func main() {
	db := flag.String("db", "riskd_sqlcheck", "database name to put in the statements")
	flag.Parse()
	stmts, err := chstore.SQLDump(*db)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sqldump:", err)
		os.Exit(1)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(stmts); err != nil {
		fmt.Fprintln(os.Stderr, "sqldump:", err)
		os.Exit(1)
	}
}
