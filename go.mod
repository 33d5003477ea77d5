module riskd

go 1.26.0

require (
	github.com/expr-lang/expr v1.17.8
	github.com/valyala/fastjson v1.6.10
	gopkg.in/yaml.v3 v3.0.1
)

require github.com/goccy/go-json v0.12.0
