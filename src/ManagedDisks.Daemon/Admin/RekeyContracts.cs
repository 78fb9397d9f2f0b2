namespace ManagedDisks.Daemon.Admin;

/// <summary>
/// A disk's re-key as <c>GET /v1/disks/{name}/rekey</c> reports it. <see cref="State"/>: none,
/// running, completed, failed, interrupted (resumes when the disk is served again), or pending
/// (the header records one that is not running: the disk is read-only). <see cref="Watermark"/>:
/// bytes from the start under the new DEK; <see cref="Rate"/>: bytes per second of this run.
/// </summary>
internal sealed record RekeyView(
    string Disk, string State, long Watermark, long Size, double Percent, DateTimeOffset? Started, double Rate,
    string? KeyStore = null, string? Key = null, string? KeyVersion = null, string? Error = null);
