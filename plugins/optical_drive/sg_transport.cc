// SCSI pass-through over libsgutils2's sg_pt API (sg3_utils): /dev/sg*, /dev/sr* and links to
// them (/dev/disk/by-id/...). One pass-through object per command; the file descriptor is opened
// once, O_RDWR | O_NONBLOCK as sg3_utils' own tools open it (O_NONBLOCK: opening an sr device
// without a disc must not wait for one).
#include <fcntl.h>

#include <cerrno>
#include <climits>
#include <cstring>

#include <scsi/sg_pt.h>

#include "plugins/optical_drive/transport.h"

namespace labctl::optical_drive {

namespace {

constexpr int kSenseMax = 64;

// errno values that mean the device is not (or no longer) there.
bool gone(int err) {
  return err == ENODEV || err == ENXIO || err == ENOENT || err == EIO || err == ESHUTDOWN;
}

class SgTransport : public Transport {
 public:
  SgTransport(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  ~SgTransport() override {
    if (fd_ >= 0) scsi_pt_close_device(fd_);
  }
  SgTransport(const SgTransport&) = delete;
  SgTransport& operator=(const SgTransport&) = delete;

  const std::string& path() const override { return path_; }

  Result<Response> execute(const Command& c) override {
    if (c.cdb.empty() || c.cdb.size() > 16)
      return fail(Errc::InvalidInput,
                  path_ + ": a CDB of " + std::to_string(c.cdb.size()) + " bytes");
    if (c.data_out.size() > INT_MAX || c.data_in_length > INT_MAX)
      return fail(Errc::InvalidInput, path_ + ": a transfer over 2 GiB");
    struct Obj {
      sg_pt_base* p = construct_scsi_pt_obj_with_fd(-1, 0);
      ~Obj() {
        if (p) destruct_scsi_pt_obj(p);
      }
    } obj;
    if (!obj.p) return fail(Errc::Internal, path_ + ": cannot make a pass-through object");
    Response r;
    std::uint8_t sense[kSenseMax] = {};
    set_scsi_pt_cdb(obj.p, c.cdb.data(), static_cast<int>(c.cdb.size()));
    set_scsi_pt_sense(obj.p, sense, kSenseMax);
    if (c.direction == Direction::In && c.data_in_length > 0) {
      r.data.resize(c.data_in_length);
      set_scsi_pt_data_in(obj.p, r.data.data(), static_cast<int>(r.data.size()));
    } else if (c.direction == Direction::Out && !c.data_out.empty()) {
      set_scsi_pt_data_out(obj.p, c.data_out.data(), static_cast<int>(c.data_out.size()));
    }
    // The pass-through counts in whole seconds; round up so a 500 ms limit is not 0 (no limit).
    const auto ms = std::max<std::int64_t>(c.timeout.count(), 1);
    const int secs = static_cast<int>(std::min<std::int64_t>((ms + 999) / 1000, INT_MAX));
    const int rc = do_scsi_pt(obj.p, fd_, secs, 0);
    if (rc == SCSI_PT_DO_TIMEOUT)
      return fail(Errc::Timeout, path_ + ": no completion within " + std::to_string(secs) + " s");
    if (rc < 0) {
      const int err = -rc;
      return fail(gone(err) ? Errc::Unreachable : Errc::Internal,
                  path_ + ": " + std::strerror(err) + (gone(err) ? " (the device is gone)" : ""));
    }
    if (rc != SCSI_PT_DO_START_OK)
      return fail(Errc::Internal,
                  path_ + ": the pass-through refused the command (" + std::to_string(rc) + ")");
    switch (get_scsi_pt_result_category(obj.p)) {
      case SCSI_PT_RESULT_OS_ERR: {
        const int err = get_scsi_pt_os_err(obj.p);
        return fail(gone(err) ? Errc::Unreachable : Errc::Internal,
                    path_ + ": " + std::strerror(err));
      }
      case SCSI_PT_RESULT_TRANSPORT_ERR: {
        char buf[256] = {};
        get_scsi_pt_transport_err_str(obj.p, sizeof buf, buf);
        // Host adapter errors (no connect, bus reset, abort) leave the command's fate unknown:
        // the device is treated as unreachable, so the engine asks it again before retrying.
        return fail(Errc::Unreachable, path_ + ": transport error: " + std::string(buf));
      }
      default:
        break;
    }
    r.status = static_cast<std::uint8_t>(get_scsi_pt_status_response(obj.p));
    const int sense_len = get_scsi_pt_sense_len(obj.p);
    if (sense_len > 0) r.sense.assign(sense, sense + std::min(sense_len, kSenseMax));
    r.residual = get_scsi_pt_resid(obj.p);
    if (c.direction == Direction::In && r.residual > 0 &&
        static_cast<std::size_t>(r.residual) <= r.data.size())
      r.data.resize(r.data.size() - static_cast<std::size_t>(r.residual));
    return r;
  }

 private:
  std::string path_;
  int fd_ = -1;
};

}  // namespace

Result<std::unique_ptr<Transport>> open_sg_transport(const std::string& path) {
  const int fd = scsi_pt_open_flags(path.c_str(), O_RDWR | O_NONBLOCK, 0);
  if (fd < 0) {
    const int err = fd == -1 ? errno : -fd;
    Errc code = Errc::Internal;
    if (err == ENOENT || err == ENODEV || err == ENXIO) code = Errc::Unreachable;
    if (err == EACCES || err == EPERM) code = Errc::PreconditionFailed;
    return fail(code, path + ": cannot open: " + std::strerror(err) +
                          (err == EACCES || err == EPERM
                               ? " (SCSI pass-through needs root or the 'cdrom' group)"
                               : ""));
  }
  return std::unique_ptr<Transport>(new SgTransport(path, fd));
}

Result<std::unique_ptr<Transport>> open_transport(const std::string& path) {
  if (path.starts_with(kEmulatorPrefix))
    return open_emulator_transport(path.substr(kEmulatorPrefix.size()));
  if (path.empty()) return fail(Errc::InvalidInput, "no device path");
  return open_sg_transport(path);
}

}  // namespace labctl::optical_drive
