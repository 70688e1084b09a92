// Minimal vcsim for libvirt's ESX driver, built from Debian's
// golang-github-vmware-govmomi-dev (0.24.2) in GOPATH mode. labctl's copy of
// ../shared/peers/vcsim/main.go (see README.md here), plus -about-version and -about-build so a
// test can be the seed's ESXi 4.1.0 build 260247.
package main

import (
	"bytes"
	"crypto/tls"
	"encoding/xml"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/simulator/esx"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

const xsiNS = "http://www.w3.org/2001/XMLSchema-instance"

var xsdName = map[string]string{"string": "xsd:string", "int": "xsd:int", "long": "xsd:long",
	"short": "xsd:short", "boolean": "xsd:boolean", "dateTime": "xsd:dateTime", "byte": "xsd:byte"}

// addArrayItemTypes gives every child of an <... xsi:type="ArrayOfX"> element its own
// xsi:type (as real ESX does); libvirt's esxVI_List_CastFromAnyType requires it.
func addArrayItemTypes(body []byte) []byte {
	d := xml.NewDecoder(bytes.NewReader(body))
	type ins struct {
		at  int
		txt string
	}
	var edits []ins
	var stack []bool // is the element an ArrayOf* container?
	for {
		tok, err := d.RawToken()
		if err != nil {
			break
		}
		switch t := tok.(type) {
		case xml.StartElement:
			off := int(d.InputOffset())
			isArray, hasType := false, false
			for _, a := range t.Attr {
				if a.Name.Local == "type" && a.Name.Space != "" && a.Name.Space != "xmlns" {
					hasType = true
					isArray = strings.HasPrefix(a.Value, "ArrayOf")
				}
			}
			if len(stack) > 0 && stack[len(stack)-1] && !hasType {
				typ := t.Name.Local
				if x, ok := xsdName[typ]; ok {
					typ = x
				}
				at := off - 1 // before '>'
				if off >= 2 && body[off-2] == '/' {
					at = off - 2
				}
				edits = append(edits, ins{at, ` xmlns:xsi="` + xsiNS + `" xsi:type="` + typ + `"`})
			}
			stack = append(stack, isArray)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		}
	}
	if len(edits) == 0 {
		return body
	}
	var out bytes.Buffer
	prev := 0
	for _, e := range edits {
		out.Write(body[prev:e.at])
		out.WriteString(e.txt)
		prev = e.at
	}
	out.Write(body[prev:])
	return out.Bytes()
}

var (
	folderPathRE = regexp.MustCompile(`<folderPath>\[([^\]]*)\] ?/+`)
	diskInfoRE   = regexp.MustCompile(`(<file [^>]*type="VmDiskFileInfo">)(.*?)</file>`)
)

// fixBrowserResults: vcsim returns "[ds]/dir" folder paths (ESX: "[ds] dir") and omits
// fileSize (0-byte files) and capacityKb, which libvirt's vol-info dereferences.
func fixBrowserResults(body []byte) []byte {
	body = folderPathRE.ReplaceAll(body, []byte("<folderPath>[$1] "))
	return diskInfoRE.ReplaceAllFunc(body, func(m []byte) []byte {
		sub := diskInfoRE.FindSubmatch(m)
		inner := sub[2]
		if !bytes.Contains(inner, []byte("<fileSize>")) {
			inner = append(inner, []byte("<fileSize>0</fileSize>")...)
		}
		if !bytes.Contains(inner, []byte("<capacityKb>")) {
			inner = append(inner, []byte("<capacityKb>10240</capacityKb>")...) // fake 10 MiB
		}
		return append(append(append([]byte{}, sub[1]...), inner...), []byte("</file>")...)
	})
}

func fixup(h http.Handler, trace bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/sdk") {
			if trace {
				fmt.Fprintf(os.Stderr, "HTTP %s %s\n", r.Method, r.URL)
			}
			orig := *r.URL // vcsim's ServeDatastore rewrites r.URL.Path
			h.ServeHTTP(w, r)
			if r.Method == http.MethodPut && strings.HasPrefix(orig.Path, "/folder/") &&
				strings.HasSuffix(orig.Path, ".vmx") {
				touchRegisterFiles(&orig)
			}
			return
		}
		// vcsim 0.24's datastore browser returns no files unless searchSpec.matchPattern
		// is set; libvirt (vol-list) sends none, real ESX then matches everything.
		if reqBody, err := io.ReadAll(r.Body); err == nil {
			if bytes.Contains(reqBody, []byte("<SearchDatastore")) && !bytes.Contains(reqBody, []byte("matchPattern")) {
				reqBody = bytes.Replace(reqBody, []byte("</searchSpec>"),
					[]byte(`<matchPattern xmlns="urn:vim25">*</matchPattern></searchSpec>`), 1)
			}
			r.Body = io.NopCloser(bytes.NewReader(reqBody))
			r.ContentLength = int64(len(reqBody))
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		body := fixBrowserResults(addArrayItemTypes(rec.Body.Bytes()))
		if trace {
			fmt.Fprintf(os.Stderr, "Fixed response: %s\n", body)
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(rec.Code)
		_, _ = io.Copy(w, bytes.NewReader(body))
	})
}

// fillForLibvirt patches the model the way libvirt's esx driver expects a real host:
// datastore mount paths (libvirt hashes host[].mountInfo.path, NULL -> crash) and
// non-empty .vmx files (vcsim writes 0-byte ones; libvirt downloads and parses them).
func fillForLibvirt() {
	for _, e := range simulator.Map.All("Datastore") {
		ds := e.(*simulator.Datastore)
		for i := range ds.Host {
			if ds.Host[i].MountInfo.Path == "" {
				ds.Host[i].MountInfo.Path = ds.Info.GetDatastoreInfo().Url
			}
		}
	}
	for _, e := range simulator.Map.All("HostSystem") {
		h := e.(*simulator.HostSystem)
		// vcsim 0.24 keeps only the last host's mount when several hosts share a datastore (VPX)
		for _, ref := range h.Datastore {
			ds, ok := simulator.Map.Get(ref).(*simulator.Datastore)
			if !ok {
				continue
			}
			found := false
			for _, hm := range ds.Host {
				found = found || hm.Key == h.Self
			}
			if !found {
				ds.Host = append(ds.Host, types.DatastoreHostMount{Key: h.Self, MountInfo: types.HostMountInfo{
					Path: ds.Info.GetDatastoreInfo().Url, AccessMode: "readWrite",
					Mounted: types.NewBool(true), Accessible: types.NewBool(true)}})
			}
		}
		if h.Capability == nil { // libvirt reads capability.maxSupportedVcpus (setvcpus)
			h.Capability = &types.HostCapability{MaxSupportedVcpus: 128}
		}
		// ConfigManager.AutoStartManager points at an object vcsim 0.24 never registers
		ref := types.ManagedObjectReference{Type: "HostAutoStartManager", Value: "ha-autostart-mgr"}
		if !simulator.Map.IsESX() {
			ref.Value = "autostart-" + h.Self.Value
		}
		cfg := *esx.HostConfigInfo.AutoStart
		d := *cfg.Defaults
		cfg.Defaults = &d
		m := &autoStartManager{}
		m.Self, m.Config = ref, cfg
		simulator.Map.Put(m)
		h.ConfigManager.AutoStartManager = &ref
	}
	for _, e := range simulator.Map.All("VirtualMachine") {
		vm := e.(*simulator.VirtualMachine)
		var p object.DatastorePath
		if !p.FromString(vm.Config.Files.VmPathName) {
			continue
		}
		var dir string
		for _, ref := range vm.Datastore {
			ds := simulator.Map.Get(ref).(*simulator.Datastore)
			if ds.Name == p.Datastore {
				dir = ds.Info.GetDatastoreInfo().Url
			}
		}
		if dir == "" {
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, p.Path), []byte(vmxFor(vm)), 0644); err != nil {
			log.Print(err)
		}
	}
}

type autoStartManager struct{ mo.HostAutoStartManager }

func (m *autoStartManager) ReconfigureAutostart(req *types.ReconfigureAutostart) soap.HasFault {
	if req.Spec.Defaults != nil {
		m.Config.Defaults = req.Spec.Defaults
	}
	for _, p := range req.Spec.PowerInfo {
		done := false
		for i := range m.Config.PowerInfo {
			if m.Config.PowerInfo[i].Key == p.Key {
				m.Config.PowerInfo[i], done = p, true
			}
		}
		if !done {
			m.Config.PowerInfo = append(m.Config.PowerInfo, p)
		}
	}
	return &methods.ReconfigureAutostartBody{Res: &types.ReconfigureAutostartResponse{}}
}

// touchRegisterFiles: vcsim's RegisterVM_Task insists that <dir>.nvram and vmware.log
// already exist next to the .vmx (real ESX does not), so create them when a .vmx is uploaded.
func touchRegisterFiles(u *url.URL) {
	ds := u.Query().Get("dsName")
	for _, e := range simulator.Map.All("Datastore") {
		d := e.(*simulator.Datastore)
		if d.Name != ds {
			continue
		}
		rel := strings.TrimPrefix(u.Path, "/folder/")
		dir := filepath.Join(d.Info.GetDatastoreInfo().Url, filepath.Dir(rel))
		for _, f := range []string{filepath.Base(dir) + ".nvram", "vmware.log"} {
			p := filepath.Join(dir, f)
			if _, err := os.Stat(p); os.IsNotExist(err) {
				_ = os.WriteFile(p, nil, 0644)
			}
		}
		return
	}
}

func vmxFor(vm *simulator.VirtualMachine) string {
	c := vm.Config
	u := strings.ReplaceAll(c.Uuid, "-", "")
	var ub []string
	for i := 0; i+2 <= len(u); i += 2 {
		ub = append(ub, u[i:i+2])
	}
	uuid := strings.Join(ub, " ")
	if len(ub) == 16 {
		uuid = strings.Join(ub[:8], " ") + "-" + strings.Join(ub[8:], " ")
	}
	var b strings.Builder
	kv := func(k, v string) { fmt.Fprintf(&b, "%s = \"%s\"\n", k, v) }
	kv(".encoding", "UTF-8")
	kv("config.version", "8")
	kv("virtualHW.version", "13")
	kv("displayName", c.Name)
	kv("guestOS", "other-64")
	kv("memsize", strconv.Itoa(int(c.Hardware.MemoryMB)))
	kv("numvcpus", strconv.Itoa(int(c.Hardware.NumCPU)))
	kv("uuid.bios", uuid)
	devs := object.VirtualDeviceList(c.Hardware.Device)
	nic := 0
	for _, d := range devs {
		switch dev := d.(type) {
		case types.BaseVirtualSCSIController:
			sc := dev.GetVirtualSCSIController()
			n := fmt.Sprintf("scsi%d", sc.BusNumber)
			kv(n+".present", "TRUE")
			kv(n+".virtualDev", devs.Type(d))
		case *types.VirtualDisk:
			ctl, ok := devs.FindByKey(dev.ControllerKey).(types.BaseVirtualSCSIController)
			bk, ok2 := dev.Backing.(types.BaseVirtualDeviceFileBackingInfo)
			if !ok || !ok2 || dev.UnitNumber == nil {
				continue
			}
			var fp object.DatastorePath
			fp.FromString(bk.GetVirtualDeviceFileBackingInfo().FileName)
			n := fmt.Sprintf("scsi%d:%d", ctl.GetVirtualSCSIController().BusNumber, *dev.UnitNumber)
			kv(n+".present", "TRUE")
			kv(n+".deviceType", "scsi-hardDisk")
			kv(n+".fileName", filepath.Base(fp.Path))
		case types.BaseVirtualEthernetCard:
			card := dev.GetVirtualEthernetCard()
			netName := "VM Network"
			switch nb := card.Backing.(type) {
			case *types.VirtualEthernetCardNetworkBackingInfo:
				netName = nb.DeviceName
			case *types.VirtualEthernetCardDistributedVirtualPortBackingInfo:
				ref := types.ManagedObjectReference{Type: "DistributedVirtualPortgroup", Value: nb.Port.PortgroupKey}
				if pg, ok := simulator.Map.Get(ref).(mo.Entity); ok {
					netName = pg.Entity().Name
				}
			}
			model := "e1000"
			if t := devs.Type(d); t == "vmxnet3" || t == "e1000e" {
				model = t
			}
			n := fmt.Sprintf("ethernet%d", nic)
			nic++
			kv(n+".present", "TRUE")
			kv(n+".virtualDev", model)
			kv(n+".networkName", netName)
			kv(n+".addressType", "generated")
			kv(n+".generatedAddress", card.MacAddress)
		}
	}
	return b.String()
}

func main() {
	model := flag.String("model", "esx", "esx or vpx")
	addr := flag.String("addr", "127.0.0.1:8989", "listen address (loopback only)")
	vms := flag.Int("vm", 2, "VMs (per host for esx, per resource pool for vpx)")
	apiVer := flag.String("api-version", "", "override about.apiVersion")
	prodLine := flag.String("product-line", "", "override about.productLineId")
	aboutVersion := flag.String("about-version", "", "override about.version (e.g. 4.1.0, the seed's ESXi)")
	aboutBuild := flag.String("about-build", "", "override about.build (e.g. 260247)")
	fix := flag.Bool("libvirt-fixes", true, "add xsi:type to ArrayOf* items, mount paths, .vmx contents")
	trace := flag.Bool("trace", false, "write SOAP traffic to stderr")
	flag.Parse()
	simulator.Trace = *trace

	var m *simulator.Model
	if *model == "vpx" {
		m = simulator.VPX()
	} else {
		m = simulator.ESX()
	}
	m.Machine = *vms
	if *apiVer != "" {
		m.ServiceContent.About.ApiVersion = *apiVer
	}
	if *prodLine != "" {
		m.ServiceContent.About.ProductLineId = *prodLine
	}
	if *aboutVersion != "" || *aboutBuild != "" {
		a := &m.ServiceContent.About
		if *aboutVersion != "" {
			a.Version = *aboutVersion
		}
		if *aboutBuild != "" {
			a.Build = *aboutBuild
		}
		a.FullName = a.Name + " " + a.Version + " build-" + a.Build
	}
	if err := m.Create(); err != nil {
		log.Fatal(err)
	}
	defer m.Remove()
	if *fix {
		fillForLibvirt()
	}

	m.Service.Listen = &url.URL{Host: *addr, User: url.UserPassword("user", "pass")}
	m.Service.TLS = new(tls.Config)
	m.Service.RegisterEndpoints = true
	s := m.Service.NewServer()
	defer s.Close()
	if *fix { // no client has connected yet
		s.Config.Handler = fixup(s.Config.Handler, *trace)
	}

	fmt.Printf("URL=%s\n", s.URL.String())
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGINT, syscall.SIGTERM)
	<-c
}
