using System.Text.Json;
using System.Text.Json.Serialization;

namespace ManagedDisks.Daemon.Admin;

// The admin API's JSON shapes, shared by the daemon and the CLI (snake_case on the wire).

/// <summary>
/// A disk as the daemon sees it. <see cref="State"/>: serving, grace (its key is not usable and
/// <see cref="Deadline"/> says when it will be shut down), shut-down (waiting for its key), or
/// detached. <see cref="KeyState"/>: usable, revoked or unreachable; <see cref="Reason"/> says why.
/// </summary>
internal sealed record DiskView(
    string Name, long Size, int SectorSize, string? EncryptionSet, string KeyStore, string Key, string KeyVersion,
    string BackingFile, int Connections, long BytesRead, long BytesWritten, long Requests, long Errors,
    string State = "serving", string KeyState = "usable", DateTimeOffset? Deadline = null, string? Reason = null);

/// <summary>Everything an operator looks at first: disks with their traffic, clients, and key states.</summary>
internal sealed record StatusView(DateTimeOffset Time, IReadOnlyList<DiskView> Disks, IReadOnlyList<ConnectionView> Connections, IReadOnlyList<KeyStatusView> Keys);

internal sealed record ConnectionView(long Id, string Peer, string? Export, DateTimeOffset Since);

/// <summary>A set's key as the daemon's last key poll read it (<see cref="ReadAt"/>); status never waits on a key store.</summary>
internal sealed record KeyStatusView(string EncryptionSet, string Identity, string KeyStore, string Key, string? KeyVersion, string KeyState, string GrantedOperations,
    DateTimeOffset? ReadAt);

/// <summary>A new disk: empty of <see cref="Size"/>, or a copy of snapshot <see cref="From"/>.</summary>
internal sealed record CreateDiskRequest(string Name, string? Size, int? SectorSize, string? EncryptionSet, string? Description, string? From = null);

internal sealed record SnapshotRequest(string Name);

internal sealed record MoveDiskRequest(string? EncryptionSet);

internal sealed record ErrorView(string Error);

internal static class AdminJson
{
    public static readonly JsonSerializerOptions Options = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
        WriteIndented = true,
    };
}
