using System.Reflection;
using System.Text.RegularExpressions;
using ManagedDisks.Nbd;
using Tomlyn;

namespace ManagedDisks.Daemon.Configuration;

/// <summary>A configuration that cannot be used; the message lists every problem found.</summary>
internal sealed class ConfigException(string message) : Exception(message);

/// <summary>Reads disks.toml (or the embedded default), validates all of it, and resolves paths.</summary>
internal static partial class ConfigLoader
{
    public const string EmbeddedDefaultName = "(embedded default)";
    private const long MaxExportSize = long.MaxValue; // never above 2^63-1 (libnbd 1.18 release notes)

    public static DaemonSettings LoadFile(string path)
    {
        string fullPath = Path.GetFullPath(path);
        string text;
        try { text = File.ReadAllText(fullPath); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ConfigException($"cannot read the configuration file {fullPath}: {e.Message}");
        }
        return Load(text, fullPath, Path.GetDirectoryName(fullPath)!);
    }

    /// <summary>The built-in configuration used by <c>serve</c> without <c>--config</c>: everything under the working directory.</summary>
    public static DaemonSettings LoadEmbeddedDefault(string workingDirectory)
    {
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream("ManagedDisks.Daemon.default.toml")!;
        using var reader = new StreamReader(stream);
        return Load(reader.ReadToEnd(), EmbeddedDefaultName, workingDirectory);
    }

    public static DaemonSettings Load(string text, string source, string baseDirectory)
    {
        DisksConfigFile file;
        try
        {
            file = TomlSerializer.Deserialize<DisksConfigFile>(text, new TomlSerializerOptions { SourceName = source })
                   ?? new DisksConfigFile();
        }
        catch (TomlException e)
        {
            throw new ConfigException($"{source}: {e.Message}");
        }

        var errors = new List<string>();
        var daemon = file.Daemon ?? new DaemonSection();

        string stateDir = Path.GetFullPath(daemon.StateDir ?? "/var/lib/managed-disks", baseDirectory);

        var listen = new List<ListenAddress>();
        foreach (string entry in daemon.Listen ?? [$"unix:{Path.Combine(stateDir, "nbd.sock")}"])
        {
            if (ListenAddress.TryParse(entry, stateDir, out string? error) is { } address) listen.Add(address);
            else errors.Add($"[daemon] listen: {error}");
        }
        if (daemon.Listen is { Count: 0 }) errors.Add("[daemon] listen: give at least one address, e.g. [\"unix:/run/managed-disks/nbd.sock\"]");

        string adminSocket = Path.GetFullPath(daemon.AdminSocket ?? "admin.sock", stateDir);

        string platformKeyFile = Path.Combine(stateDir, "keys", "platform-key.pem");
        string platformKeySecret = Path.GetFullPath(daemon.PlatformKeySecret ?? Path.Combine("keys", "platform-key.secret"), stateDir);

        var server = new NbdServerOptions();
        if (daemon.MaxConnections is { } maxConnections)
        {
            if (maxConnections is < 1 or > 100_000) errors.Add($"[daemon] max_connections: {maxConnections} is not between 1 and 100000");
            else server = server with { MaxConnections = (int)maxConnections };
        }
        if (daemon.HandshakeTimeout is { } handshake)
        {
            if (Units.TryParseDuration(handshake, out var timeout)) server = server with { HandshakeTimeout = timeout };
            else errors.Add($"[daemon] handshake_timeout: '{handshake}' is not a duration like \"10s\" or \"1m\"");
        }
        if (daemon.ConnectionInflightBytes is { } inflight)
        {
            if (Units.TryParseSize(inflight, out long bytes) && bytes >= 32L << 20) server = server with { MaxInFlightBytesPerConnection = bytes };
            else errors.Add($"[daemon] connection_inflight_bytes: '{inflight}' is not a size of at least 32M (one maximum request)");
        }

        var keyStores = new List<KeyStoreSettings>();
        foreach (var (store, index) in (file.KeyStores ?? []).Select((k, i) => (k, i)))
        {
            string where = store.Name is null ? $"[[key_store]] #{index + 1}" : $"[[key_store]] '{store.Name}'";
            if (string.IsNullOrEmpty(store.Name) || !DiskName().IsMatch(store.Name) || store.Name == "platform")
            {
                errors.Add($"{where}: name must be 1-64 characters of letters, digits, '.', '_' or '-' (and not 'platform', the built-in store)");
                continue;
            }
            if (keyStores.Any(k => k.Name == store.Name)) errors.Add($"{where}: a key store with this name is declared twice");
            string type = store.Type ?? "software";
            if (type != "software") errors.Add($"{where}: type '{type}' is not supported; use \"software\"");
            keyStores.Add(new KeyStoreSettings(store.Name, type,
                Path.GetFullPath(store.Path ?? Path.Combine("vaults", store.Name), stateDir),
                Path.GetFullPath(store.MasterKeyFile ?? Path.Combine("vaults", store.Name + ".master-key"), stateDir)));
        }

        var sets = new List<EncryptionSetSettings>();
        foreach (var (set, index) in (file.EncryptionSets ?? []).Select((e, i) => (e, i)))
        {
            string where = set.Name is null ? $"[[encryption_set]] #{index + 1}" : $"[[encryption_set]] '{set.Name}'";
            if (string.IsNullOrEmpty(set.Name) || !DiskName().IsMatch(set.Name))
            {
                errors.Add($"{where}: name must be 1-64 characters of letters, digits, '.', '_' or '-'");
                continue;
            }
            if (sets.Any(e => e.Name == set.Name)) errors.Add($"{where}: an encryption set with this name is declared twice");
            if (set.KeyStore is null) errors.Add($"{where}: key_store is missing");
            else if (keyStores.All(k => k.Name != set.KeyStore)) errors.Add($"{where}: key_store '{set.KeyStore}' is not a declared [[key_store]]");
            if (string.IsNullOrEmpty(set.Key)) errors.Add($"{where}: key is missing (the name of a key in the store)");
            sets.Add(new EncryptionSetSettings(set.Name, set.KeyStore ?? "", set.Key ?? "", set.KeyVersion, set.AutoRotate ?? false,
                set.Identity ?? $"encryption-set:{set.Name}"));
        }

        var disks = new List<DiskSettings>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        var paths = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (disk, index) in (file.Disks ?? []).Select((d, i) => (d, i)))
        {
            string where = disk.Name is null ? $"[[disk]] #{index + 1}" : $"[[disk]] '{disk.Name}'";
            if (string.IsNullOrEmpty(disk.Name) || !DiskName().IsMatch(disk.Name))
            {
                errors.Add($"{where}: name must be 1-64 characters of letters, digits, '.', '_' or '-' (it is the NBD export name)");
                continue;
            }
            bool firstOfName = names.Add(disk.Name);
            if (!firstOfName) errors.Add($"{where}: a disk with this name is declared twice");

            long size = 0;
            if (disk.Size is null) errors.Add($"{where}: size is missing, e.g. size = \"10G\"");
            else if (!Units.TryParseSize(disk.Size, out size) || size <= 0 || size > MaxExportSize)
                errors.Add($"{where}: size '{disk.Size}' is not a size like \"512M\", \"10G\" or a byte count");
            else if (size % 4096 != 0)
                errors.Add($"{where}: size {size} is not a multiple of 4096 bytes, which kernels and file systems need");

            string path = Path.GetFullPath(disk.Path ?? Path.Combine("disks", disk.Name + ".img"), stateDir);
            if (!paths.Add(path) && firstOfName) errors.Add($"{where}: backing file {path} is already used by another disk");

            long sectorSize = disk.SectorSize ?? 4096;
            if (sectorSize is not (512 or 4096)) errors.Add($"{where}: sector_size must be 512 or 4096, not {sectorSize}");

            if (disk.EncryptionSet is not null && sets.All(e => e.Name != disk.EncryptionSet))
                errors.Add($"{where}: encryption_set '{disk.EncryptionSet}' is not a declared [[encryption_set]]");

            disks.Add(new DiskSettings(disk.Name, size, path, disk.Description ?? "", disk.ReadOnly ?? false, (int)sectorSize, disk.DetectZeroes ?? false, disk.EncryptionSet));
        }

        if (errors.Count > 0)
            throw new ConfigException($"{source} has {errors.Count} problem{(errors.Count == 1 ? "" : "s")}:\n  " + string.Join("\n  ", errors));
        return new DaemonSettings(source, stateDir, listen, adminSocket, platformKeyFile, platformKeySecret, server, disks, keyStores, sets);
    }

    [GeneratedRegex("^[A-Za-z0-9._-]{1,64}$")]
    private static partial Regex DiskName();
}
