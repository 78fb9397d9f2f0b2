using System.Net;
using ManagedDisks.Nbd;

namespace ManagedDisks.Daemon.Configuration;

/// <summary>The validated configuration, with every path absolute.</summary>
internal sealed record DaemonSettings(
    string Source,
    string StateDir,
    IReadOnlyList<ListenAddress> Listen,
    string AdminSocket,
    string PlatformKeyFile,
    string PlatformKeySecretFile,
    NbdServerOptions Server,
    IReadOnlyList<DiskSettings> Disks,
    IReadOnlyList<KeyStoreSettings> KeyStores,
    IReadOnlyList<EncryptionSetSettings> EncryptionSets)
{
    /// <summary>How often the daemon re-reads key state, e.g. to open a disk whose key was granted since start.</summary>
    public TimeSpan KeyPollInterval { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>How long a disk keeps serving after its key was disabled, deleted, expired or its grant revoked.</summary>
    public TimeSpan RevokeGrace { get; init; } = TimeSpan.FromHours(1);

    /// <summary>How long a disk keeps serving while its key store cannot be reached.</summary>
    public TimeSpan UnreachableGrace { get; init; } = TimeSpan.FromHours(1);

    /// <summary>How often sets with auto_rotate look for a new key version.</summary>
    public TimeSpan RotationCheckInterval { get; init; } = TimeSpan.FromHours(1);

    /// <summary>[daemon] on_key_revoked: a command run when a grace period starts (disk name and deadline appended), or empty.</summary>
    public IReadOnlyList<string> OnKeyRevoked { get; init; } = [];

    /// <summary>Where the revocation clocks are kept across restarts.</summary>
    public string GraceTimersFile => System.IO.Path.Combine(StateDir, "grace-timers.json");

    /// <summary>[tls] as written (paths resolved), for config show; the loaded certificates are in Server.Tls.</summary>
    public TlsSettings Tls { get; init; } = new("off", null, null, null);

    /// <summary>[metrics] listen: where Prometheus scrapes, or null for no metrics endpoint.</summary>
    public Uri? Metrics { get; init; }

    public string AuditLog => System.IO.Path.Combine(StateDir, "audit.log");
}

internal sealed record TlsSettings(string Mode, string? Certificate, string? Key, string? ClientCa);

/// <summary>
/// A [[key_store]]: "software" (a vault in a folder, private keys under a master key: <see cref="Path"/>,
/// <see cref="MasterKeyFile"/>) or "pkcs11" (keys in an HSM token: <see cref="Module"/>, <see cref="TokenLabel"/>
/// or <see cref="Slot"/>, <see cref="PinFile"/>, and the store's grants in <see cref="GrantsFile"/>).
/// </summary>
internal sealed record KeyStoreSettings(string Name, string Type, string Path, string MasterKeyFile,
    string? Module = null, string? TokenLabel = null, ulong? Slot = null, string? PinFile = null, string? GrantsFile = null);

/// <summary>
/// An [[encryption_set]]: disks in it have their DEK wrapped by <see cref="Key"/> in
/// <see cref="KeyStore"/>, used by the set's <see cref="Identity"/>, which the store must grant.
/// </summary>
internal sealed record EncryptionSetSettings(string Name, string KeyStore, string Key, string? KeyVersion, bool AutoRotate, string Identity);

internal sealed record DiskSettings(string Name, long Size, string Path, string Description, bool ReadOnly, int SectorSize = 4096, bool DetectZeroes = false, string? EncryptionSet = null);

/// <summary>A <c>unix:PATH</c> or <c>tcp:HOST:PORT</c> listen address.</summary>
internal sealed record ListenAddress(string Text, EndPoint EndPoint)
{
    public static ListenAddress? TryParse(string text, string baseDirectory, out string? error)
    {
        error = null;
        if (text.StartsWith("unix:", StringComparison.Ordinal))
        {
            string path = System.IO.Path.GetFullPath(text[5..], baseDirectory);
            // sun_path holds 108 bytes including the terminating NUL.
            if (System.Text.Encoding.UTF8.GetByteCount(path) > 107)
            {
                error = $"Unix socket path '{path}' is longer than the 107 bytes Linux allows; choose a shorter path";
                return null;
            }
            return new ListenAddress($"unix:{path}", new System.Net.Sockets.UnixDomainSocketEndPoint(path));
        }
        if (text.StartsWith("tcp:", StringComparison.Ordinal))
        {
            string rest = text[4..];
            int colon = rest.LastIndexOf(':');
            if (colon > 0 && ushort.TryParse(rest[(colon + 1)..], out ushort port))
            {
                string host = rest[..colon].Trim('[', ']');
                if (IPAddress.TryParse(host, out var address) || (host == "localhost" && (address = IPAddress.Loopback) is not null))
                    return new ListenAddress($"tcp:{rest}", new IPEndPoint(address, port));
            }
            error = $"'{text}' is not tcp:ADDRESS:PORT with a numeric IP address, e.g. tcp:127.0.0.1:10809 or tcp:[::1]:10809";
            return null;
        }
        error = $"'{text}' must start with unix: or tcp:";
        return null;
    }
}
