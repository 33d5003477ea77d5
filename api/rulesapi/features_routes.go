package rulesapi

import (
	"context"
	"fmt"
	"net/http"
	"os"

	"riskd/api"
	"riskd/rules"
	"riskd/streams/rulesync"
)

// featureRoutes read the window features the running version carries and
// publish new ones as a version (see features.go).
func (s *Service) featureRoutes() []api.Route {
	return []api.Route{
		{Pattern: "GET /v1/features", Roles: []api.Role{api.RoleViewer, api.RoleAnalyst, api.RoleSupport},
			Handler: http.HandlerFunc(s.getFeatures)},
		{Pattern: "PUT /v1/features", Roles: []api.Role{api.RoleAnalyst}, MaxBody: s.cfg.MaxBody,
			Handler: http.HandlerFunc(s.putFeatures)},
	}
}

// featureView is one window feature as GET /v1/features lists it.
type featureView struct {
	Name   string   `json:"name"`
	Kind   string   `json:"kind"`
	Of     string   `json:"of,omitempty"`
	By     string   `json:"by"`
	Window string   `json:"window"`
	Where  string   `json:"where,omitempty"`
	Steps  []string `json:"steps,omitempty"`
	Link   string   `json:"link,omitempty"`
}

// featuresAnswer is the answer of GET /v1/features.
type featuresAnswer struct {
	// Version is the running rule-set version, which carries the file.
	Version string `json:"version"`
	// File is the running features file, as published; empty when the
	// running version carries none (the features riskd started with run).
	File     string        `json:"file"`
	Features []featureView `json:"features"`
}

func (s *Service) getFeatures(w http.ResponseWriter, r *http.Request) {
	out := featuresAnswer{Features: []featureView{}, File: string(s.runningFeaturesFile())}
	if rs := s.cfg.Holder.Load(); rs != nil {
		out.Version = rs.Version.String()
	}
	if set := s.FeatureSet(); set != nil {
		for _, d := range set.Definitions() {
			out.Features = append(out.Features, featureView{Name: d.Name, Kind: string(d.Kind), Of: d.Of, By: d.By,
				Window: d.Window.String(), Where: d.Where, Steps: d.Steps, Link: d.Link})
		}
	}
	api.WriteJSON(w, http.StatusOK, out)
}

// featuresRequest is the body of PUT /v1/features.
type featuresRequest struct {
	// Features is the whole features file (YAML), as rules.features holds it.
	Features string `json:"features"`
	Message  string `json:"message"`
}

// putFeatures publishes the running rule files with new window features as
// a version: every instance changes its engine's features and installs
// the rules at one place in its stream. Definitions that do not compile,
// or that drop a feature a running or candidate rule reads, are refused
// (422, naming the feature or the rule and its position) and the running
// version stays.
func (s *Service) putFeatures(w http.ResponseWriter, r *http.Request) {
	var req featuresRequest
	if !api.DecodeJSON(w, r, &req) {
		return
	}
	if !hasMessage(w, req.Message, "what the change does") {
		return
	}
	if req.Features == "" {
		api.WriteError(w, http.StatusBadRequest, "features: give the whole features file (YAML), as riskd's rules.features holds it")
		return
	}
	s.publish.Lock()
	defer s.publish.Unlock()
	files, _, err := s.currentFiles()
	if err != nil { // the running set's files are unknown: nothing to carry over
		api.WriteError(w, http.StatusConflict, err.Error())
		return
	}
	files = cloneFiles(files)
	files[rules.FeaturesFile] = []byte(req.Features)
	s.publishChange(w, r, change{caller: caller(r), action: "features.publish", object: "features", files: files, message: req.Message})
}

// PublishFeaturesFile publishes the running rule files with content, the
// daemon's edited features file, as a new version (author riskd, from the
// directory), unless it defines the features that run already; every
// instance then installs it (Run). Definitions that do not compile, or
// that drop a feature a running or candidate rule reads, are refused,
// naming it, and nothing is published.
func (s *Service) PublishFeaturesFile(ctx context.Context, content []byte) (seq uint64, published bool, err error) {
	s.publish.Lock()
	defer s.publish.Unlock()
	files, _, err := s.currentFiles()
	if err != nil {
		return 0, false, fmt.Errorf("rulesapi: features file %s: %w", s.cfg.FeaturesFile, err)
	}
	files = cloneFiles(files)
	files[rules.FeaturesFile] = content
	rs, set, err := s.compileVersion(files)
	if err != nil {
		return 0, false, fmt.Errorf("rulesapi: features file %s: %w", s.cfg.FeaturesFile, err)
	}
	if set == nil {
		return 0, false, nil
	}
	dir, err := rules.ReadFiles(os.DirFS(s.cfg.Dir))
	if err != nil {
		return 0, false, fmt.Errorf("rulesapi: features file %s: reading the rule directory: %w", s.cfg.FeaturesFile, err)
	}
	dir[rules.FeaturesFile] = content
	rec := rulesync.Record{Hash: rs.Version.Hash, Files: toStrings(files), Author: StartAuthor,
		Message: "the features file " + s.cfg.FeaturesFile + " changed", PublishedAt: s.cfg.Now(),
		Source: rulesync.SourceDir, DirHash: rules.HashFiles(dir)}
	got, published, err := s.cfg.Sync.PublishIfChanged(ctx, rec)
	if err != nil {
		return 0, false, fmt.Errorf("rulesapi: features file %s: %w", s.cfg.FeaturesFile, err)
	}
	s.recordVersion(ctx, got, len(rs.Rules))
	return got.Seq, published, nil
}
