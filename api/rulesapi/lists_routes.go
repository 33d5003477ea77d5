package rulesapi

import (
	"fmt"
	"net/http"

	"riskd/api"
)

// listView is a list as the API shows it.
type listView struct {
	Name    string   `json:"name"`
	File    string   `json:"file"`
	Count   int      `json:"count"`
	Entries []string `json:"entries,omitempty"`
}

func (s *Service) listLists(w http.ResponseWriter, r *http.Request) {
	rs, ok := s.running(w)
	if !ok {
		return
	}
	out := []listView{}
	for _, name := range sortedKeys(rs.Lists) {
		out = append(out, listView{Name: name, File: listFile(name), Count: len(rs.Lists[name])})
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"version": rs.Version.String(), "lists": out})
}

func (s *Service) getList(w http.ResponseWriter, r *http.Request) {
	rs, ok := s.running(w)
	if !ok {
		return
	}
	name := r.PathValue("name")
	set, found := rs.Lists[name]
	if !found {
		api.WriteError(w, http.StatusNotFound, fmt.Sprintf("no list %q in version %s", name, rs.Version))
		return
	}
	entries := sortedKeys(set)
	api.WriteJSON(w, http.StatusOK, map[string]any{"version": rs.Version.String(),
		"list": listView{Name: name, File: listFile(name), Count: len(entries), Entries: entries}})
}

// entriesRequest is the body of PUT /v1/lists/{name} and POST
// /v1/lists/{name}/entries.
type entriesRequest struct {
	Entries []string `json:"entries"`
	// Message describes the change for the history; optional.
	Message string `json:"message,omitempty"`
}

// editList runs edit on the running set's list file under the publish
// lock and publishes the result. edit gets the file's content (nil when
// the list does not exist) and returns the new content, nil to delete the
// file, or an HTTP status and message to refuse.
func (s *Service) editList(w http.ResponseWriter, r *http.Request, action, message string,
	edit func(old []byte, exists bool) (content []byte, status int, msg string)) {
	name := r.PathValue("name")
	if err := checkListName(name); err != nil {
		api.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	s.publish.Lock()
	defer s.publish.Unlock()
	cur, _, err := s.currentFiles()
	if err != nil {
		api.WriteError(w, http.StatusConflict, err.Error())
		return
	}
	files := cloneFiles(cur)
	old, exists := files[listFile(name)]
	content, status, msg := edit(old, exists)
	if status != 0 {
		api.WriteError(w, status, msg)
		return
	}
	if content == nil {
		delete(files, listFile(name))
	} else {
		files[listFile(name)] = content
	}
	if message == "" {
		message = action + " " + name
	}
	s.publishChange(w, r, change{caller: caller(r), action: action, object: "list:" + name, files: files, message: message})
}

func decodeEntries(w http.ResponseWriter, r *http.Request) (entriesRequest, bool) {
	var req entriesRequest
	if !api.DecodeJSON(w, r, &req) {
		return req, false
	}
	for _, e := range req.Entries {
		if err := checkEntry(e); err != nil {
			api.WriteError(w, http.StatusBadRequest, err.Error())
			return req, false
		}
	}
	return req, true
}

func (s *Service) putList(w http.ResponseWriter, r *http.Request) {
	req, ok := decodeEntries(w, r)
	if !ok {
		return
	}
	s.editList(w, r, "lists.put", req.Message, func([]byte, bool) ([]byte, int, string) {
		return renderList(listEntries(renderList(req.Entries))), 0, ""
	})
}

func (s *Service) addEntries(w http.ResponseWriter, r *http.Request) {
	req, ok := decodeEntries(w, r)
	if !ok {
		return
	}
	if len(req.Entries) == 0 {
		api.WriteError(w, http.StatusBadRequest, "entries: give at least one value to add")
		return
	}
	s.editList(w, r, "lists.add", req.Message, func(old []byte, exists bool) ([]byte, int, string) {
		if !exists {
			return nil, http.StatusNotFound, fmt.Sprintf("no list %q; create it with PUT /v1/lists/%s", r.PathValue("name"), r.PathValue("name"))
		}
		return withEntries(old, req.Entries), 0, ""
	})
}

func (s *Service) deleteEntry(w http.ResponseWriter, r *http.Request) {
	entry := r.PathValue("entry")
	if err := checkEntry(entry); err != nil {
		api.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	s.editList(w, r, "lists.remove", "remove "+entry+" from "+r.PathValue("name"), func(old []byte, exists bool) ([]byte, int, string) {
		if !exists {
			return nil, http.StatusNotFound, fmt.Sprintf("no list %q", r.PathValue("name"))
		}
		content, found := withoutEntry(old, entry)
		if !found {
			return nil, http.StatusNotFound, fmt.Sprintf("list %q has no entry %q", r.PathValue("name"), entry)
		}
		if content == nil {
			content = []byte{}
		}
		return content, 0, ""
	})
}

func (s *Service) deleteList(w http.ResponseWriter, r *http.Request) {
	s.editList(w, r, "lists.delete", "", func(_ []byte, exists bool) ([]byte, int, string) {
		if !exists {
			return nil, http.StatusNotFound, fmt.Sprintf("no list %q", r.PathValue("name"))
		}
		return nil, 0, ""
	})
}
