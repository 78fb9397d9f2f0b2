using System.Security.Cryptography.X509Certificates;
using System.Reflection;
using System.Text.RegularExpressions;
using ManagedDisks.Nbd;

namespace ManagedDisks.Daemon.Configuration;

/// <summary>A configuration that cannot be used; the message lists every problem found, each with its line.</summary>
internal sealed class ConfigException(string message) : Exception(message);

/// <summary>
/// Reads disks.toml (or the embedded default), validates all of it against <see cref="ConfigSchema"/>
/// and resolves paths. Every problem is collected, with the line of its key (or, for a missing key,
/// of its table's header), and reported at once.
/// </summary>
internal static partial class ConfigLoader
{
    public const string EmbeddedDefaultName = "(embedded default)";
    private const long MaxExportSize = long.MaxValue; // never above 2^63-1 (libnbd 1.18 release notes)
    private const string NameRule = "1-64 characters of letters, digits, '.', '_' or '-'";

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
        var problems = new ConfigProblems(source);
        var root = LocatedToml.Parse(text, source, problems);
        problems.ThrowIfAny(); // text that is not TOML has no keys to check

        var tables = TopLevel(root, problems);
        var daemon = tables.Daemon;

        string stateDir = ResolvePath(daemon, "state_dir", "/var/lib/managed-disks", baseDirectory, "[daemon]");
        var listen = ReadListen(daemon, stateDir, problems);
        string adminSocket = ResolvePath(daemon, "admin_socket", "admin.sock", stateDir, "[daemon]");
        string platformKeyFile = Path.Combine(stateDir, "keys", "platform-key.pem");
        string platformKeySecret = ResolveSecretPath(daemon, "platform_key_secret", Path.Combine("keys", "platform-key.secret"), stateDir, "[daemon]");

        var keyPollInterval = ReadDuration(tables.Timers, "key_poll_interval", TimeSpan.FromMinutes(5));
        var revokeGrace = ReadDuration(tables.Timers, "revoke_grace", TimeSpan.FromHours(1));
        var unreachableGrace = ReadDuration(tables.Timers, "unreachable_grace", revokeGrace);
        var rotationCheckInterval = ReadDuration(tables.Timers, "rotation_check_interval", TimeSpan.FromHours(1));
        var onKeyRevoked = daemon.StringList("on_key_revoked")?.Select(v => (string)v.Value!).ToList() ?? [];
        if (daemon.StringList("on_key_revoked") is { Count: 0 })
            daemon.Problem("on_key_revoked", "[daemon] on_key_revoked: give the command as an array, e.g. [\"/usr/local/sbin/stop-vm\", \"--clean\"], or leave the key out");

        var (tls, tlsSettings) = ReadTls(tables.Tls, stateDir);
        Uri? metrics = null;
        if (tables.Metrics.String("listen") is { Length: > 0 } metricsText)
        {
            if (Uri.TryCreate(metricsText, UriKind.Absolute, out var uri) && uri.Scheme == "http" && uri.Port > 0 && uri.AbsolutePath.Length > 1)
                metrics = uri;
            else
                tables.Metrics.Problem("listen", $"[metrics] listen: '{metricsText}' is not a URL like \"http://127.0.0.1:9717/metrics\"");
        }
        var server = new NbdServerOptions { Tls = tls };
        if (daemon.Integer("max_connections") is { } maxConnections)
        {
            if (maxConnections is < 1 or > 100_000) daemon.Problem("max_connections", $"[daemon] max_connections: {maxConnections} is not between 1 and 100000");
            else server = server with { MaxConnections = (int)maxConnections };
        }
        if (daemon.Duration("handshake_timeout") is { } handshake)
        {
            if (Units.TryParseDuration(handshake, out var timeout)) server = server with { HandshakeTimeout = timeout };
            else daemon.Problem("handshake_timeout", $"[daemon] handshake_timeout: '{handshake}' is not a duration like \"10s\" or \"1m\"");
        }
        if (daemon.Size("connection_inflight_bytes") is { } inflight)
        {
            if (Units.TryParseSize(inflight, out long bytes) && bytes >= 32L << 20) server = server with { MaxInFlightBytesPerConnection = bytes };
            else daemon.Problem("connection_inflight_bytes", $"[daemon] connection_inflight_bytes: '{inflight}' is not a size of at least 32M (one maximum request)");
        }

        var keyStores = new List<KeyStoreSettings>();
        foreach (var store in tables.KeyStores)
        {
            if (ReadName(store, " (and not 'platform', the built-in store)") is not { } name) continue;
            if (name == "platform")
            {
                store.Problem("name", $"{store.Where}: name must not be 'platform', the built-in store");
                continue;
            }
            if (keyStores.Any(k => k.Name == name)) store.Problem("name", $"{store.Where}: a key store with this name is declared twice");
            string type = store.String("type") ?? "software";
            if (type == "pkcs11")
            {
                keyStores.Add(ReadPkcs11Store(store, name, stateDir, baseDirectory));
                continue;
            }
            if (type != "software") store.Problem("type", $"{store.Where}: type '{type}' is not supported; use \"software\" or \"pkcs11\"");
            foreach (string key in Pkcs11Keys.Where(store.Contains))
                store.Problem(key, $"{store.Where}: {key} belongs to type = \"pkcs11\" stores; remove it, or set type = \"pkcs11\"");
            keyStores.Add(new KeyStoreSettings(name, type,
                ResolvePath(store, "path", Path.Combine("vaults", name), stateDir, store.Where),
                ResolveSecretPath(store, "master_key_file", Path.Combine("vaults", name + ".master-key"), stateDir, store.Where)));
        }

        var sets = new List<EncryptionSetSettings>();
        foreach (var set in tables.EncryptionSets)
        {
            if (ReadName(set, "") is not { } name) continue;
            if (sets.Any(e => e.Name == name)) set.Problem("name", $"{set.Where}: an encryption set with this name is declared twice");
            string? keyStore = set.String("key_store");
            if (keyStore is null)
            {
                if (!set.Contains("key_store")) set.Problem("key_store", $"{set.Where}: key_store is missing (the name of a [[key_store]])");
            }
            else if (keyStores.All(k => k.Name != keyStore))
            {
                set.Problem("key_store", $"{set.Where}: key_store '{keyStore}' is not a declared [[key_store]]");
            }
            string? key = set.String("key");
            if (key == "" || (key is null && !set.Contains("key"))) set.Problem("key", $"{set.Where}: key is missing (the name of a key in the store)");
            sets.Add(new EncryptionSetSettings(name, keyStore ?? "", key ?? "", set.String("key_version"), set.Boolean("auto_rotate") ?? false,
                set.String("identity") ?? $"encryption-set:{name}"));
        }

        var disks = new List<DiskSettings>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        var paths = new HashSet<string>(StringComparer.Ordinal);
        foreach (var disk in tables.Disks)
        {
            if (ReadName(disk, " (it is the NBD export name)") is not { } name) continue;
            bool firstOfName = names.Add(name);
            if (!firstOfName) disk.Problem("name", $"{disk.Where}: a disk with this name is declared twice");

            long size = 0;
            if (!disk.Contains("size"))
            {
                disk.Problem("size", $"{disk.Where}: size is missing, e.g. size = \"10G\"");
            }
            else if (disk.Size("size") is { } sizeText) // null: a wrong type, already reported
            {
                if (!Units.TryParseSize(sizeText, out size) || size <= 0 || size > MaxExportSize)
                    disk.Problem("size", $"{disk.Where}: size '{sizeText}' is not a size like \"512M\", \"10G\" or a byte count");
                else if (size % 4096 != 0)
                    disk.Problem("size", $"{disk.Where}: size {size} is not a multiple of 4096 bytes, which kernels and file systems need");
            }

            string path = ResolvePath(disk, "path", Path.Combine("disks", name + ".img"), stateDir, disk.Where);
            if (!paths.Add(path) && firstOfName) disk.Problem("path", $"{disk.Where}: backing file {path} is already used by another disk");

            long sectorSize = 4096;
            if (disk.Size("sector_size") is { } sectorText && !(Units.TryParseSize(sectorText, out sectorSize) && sectorSize is 512 or 4096))
            {
                disk.Problem("sector_size", $"{disk.Where}: sector_size must be 512 or 4096, not {sectorText}");
                sectorSize = 4096;
            }

            string? encryptionSet = disk.String("encryption_set");
            if (encryptionSet is not null && sets.All(e => e.Name != encryptionSet))
                disk.Problem("encryption_set", $"{disk.Where}: encryption_set '{encryptionSet}' is not a declared [[encryption_set]]");

            disks.Add(new DiskSettings(name, size, path, disk.String("description") ?? "", disk.Boolean("read_only") ?? false, (int)sectorSize,
                disk.Boolean("detect_zeroes") ?? false, encryptionSet));
        }

        problems.ThrowIfAny();
        return new DaemonSettings(source, stateDir, listen, adminSocket, platformKeyFile, platformKeySecret, server, disks, keyStores, sets)
        {
            KeyPollInterval = keyPollInterval,
            RevokeGrace = revokeGrace,
            UnreachableGrace = unreachableGrace,
            RotationCheckInterval = rotationCheckInterval,
            OnKeyRevoked = onKeyRevoked,
            Tls = tlsSettings,
            Metrics = metrics,
        };
    }

    private static TimeSpan ReadDuration(TableReader table, string key, TimeSpan fallback)
    {
        if (table.Duration(key) is not { } text) return fallback;
        if (Units.TryParseDuration(text, out var value) && value > TimeSpan.Zero) return value;
        table.Problem(key, $"{table.Where} {key}: '{text}' is not a positive duration like \"30s\", \"5m\" or \"1h\"");
        return fallback;
    }

    private static readonly string[] Pkcs11Keys = ["module", "token_label", "slot", "pin_file"];

    /// <summary>A type = "pkcs11" [[key_store]] (docs/PKCS11.md): the module must exist, the token is named by label or slot, the PIN is in a file.</summary>
    private static KeyStoreSettings ReadPkcs11Store(TableReader store, string name, string stateDir, string baseDirectory)
    {
        foreach (string key in new[] { "path", "master_key_file" }.Where(store.Contains))
            store.Problem(key, $"{store.Where}: {key} belongs to type = \"software\" stores; a pkcs11 store keeps its keys in the token");

        string? module = null;
        if (!store.Contains("module"))
            store.Problem("type", $"{store.Where}: module is missing: the path of the HSM's PKCS#11 library, e.g. module = \"/usr/lib/softhsm/libsofthsm2.so\"");
        else if (store.Path("module") is { } moduleText)
        {
            module = ResolvePath(store, "module", moduleText, baseDirectory, store.Where);
            if (moduleText.Length > 0 && !File.Exists(module))
                store.Problem("module", $"{store.Where}: module {module} does not exist; install the HSM's PKCS#11 library (SoftHSM2: apt-get install softhsm2) or correct the path");
        }

        string? label = store.String("token_label");
        ulong? slot = null;
        if (store.Integer("slot") is { } slotNumber)
        {
            if (slotNumber < 0) store.Problem("slot", $"{store.Where}: slot {slotNumber} is not a slot id (see `pkcs11-tool --module MODULE --list-slots`)");
            else slot = (ulong)slotNumber;
        }
        if (label == "") store.Problem("token_label", $"{store.Where}: token_label is empty; give the token's label (see `pkcs11-tool --module MODULE --list-slots`)");
        if (label is not null && slot is not null)
            store.Problem("slot", $"{store.Where}: give token_label or slot, not both (a label finds the token in whichever slot it is)");
        else if (label is null && slot is null && !store.Contains("token_label") && !store.Contains("slot"))
            store.Problem("type", $"{store.Where}: token_label is missing: the label of the token holding the keys (or its slot id as slot = N)");

        string? pinFile = null;
        if (!store.Contains("pin_file"))
            store.Problem("type", $"{store.Where}: pin_file is missing: a file (0600) holding the token's user PIN, or credential:NAME");
        else
            pinFile = ResolveSecretPath(store, "pin_file", Path.Combine("pkcs11", name + ".pin"), baseDirectory, store.Where);

        return new KeyStoreSettings(name, "pkcs11", "", "", module, label, slot, pinFile,
            Path.Combine(stateDir, "pkcs11", name + ".grants.json"));
    }

    private static List<ListenAddress> ReadListen(TableReader daemon, string stateDir, ConfigProblems problems)
    {
        var listen = new List<ListenAddress>();
        var entries = daemon.StringList("listen");
        // The default is reported on the state_dir line: that is what makes it too long.
        foreach (var entry in entries ?? [new LocatedValue($"unix:{Path.Combine(stateDir, "nbd.sock")}", daemon.LineOf("state_dir"))])
        {
            if (ListenAddress.TryParse((string)entry.Value, stateDir, out string? error) is { } address) listen.Add(address);
            else problems.Add(entry.Line, $"[daemon] listen: {error}");
        }
        if (entries is { Count: 0 }) daemon.Problem("listen", "[daemon] listen: give at least one address, e.g. [\"unix:/run/managed-disks/nbd.sock\"]");
        return listen;
    }

    /// <summary>The table's name, or null (reported) when it is missing or not a valid name.</summary>
    private static string? ReadName(TableReader table, string why)
    {
        string? name = table.String("name");
        if (name is null && table.Contains("name")) return null; // the wrong type is already reported
        if (string.IsNullOrEmpty(name) || !NamePattern().IsMatch(name))
        {
            table.Problem("name", name is null
                ? $"{table.Where}: name is missing; add name = \"...\", {NameRule}{why}"
                : $"{table.Where}: name must be {NameRule}{why}");
            return null;
        }
        return name;
    }

    /// <summary>The key's path (or the default) made absolute against <paramref name="baseDirectory"/>.</summary>
    /// <summary>
    /// A secret file may be given as <c>credential:NAME</c>: the file systemd passes with
    /// <c>LoadCredential=NAME:...</c>, found in <c>$CREDENTIALS_DIRECTORY</c>, so the secret
    /// need not sit on the same disk as the data it protects.
    /// </summary>
    private static string ResolveSecretPath(TableReader table, string key, string fallback, string baseDirectory, string where)
    {
        string? value = table.Path(key);
        if (value is null || !value.StartsWith("credential:", StringComparison.Ordinal))
            return ResolvePath(table, key, fallback, baseDirectory, where);
        string name = value["credential:".Length..];
        string? directory = Environment.GetEnvironmentVariable("CREDENTIALS_DIRECTORY");
        if (name.Length == 0 || name.Contains('/'))
            table.Problem(key, $"{where} {key}: '{value}' must name one credential, e.g. credential:vault-master-key");
        else if (string.IsNullOrEmpty(directory))
            table.Problem(key, $"{where} {key}: '{value}' needs systemd's CREDENTIALS_DIRECTORY; add LoadCredential={name}:/path/to/file to the service, or give a file path");
        else
            return Path.Combine(directory, name);
        return Path.GetFullPath(fallback, baseDirectory);
    }

    private static string ResolvePath(TableReader table, string key, string fallback, string baseDirectory, string where)
    {
        string? value = table.Path(key);
        if (value is "" or null && table.Contains(key))
        {
            if (value == "") table.Problem(key, $"{where} {key}: the path is empty; remove the key to use the default, {fallback}");
            return Path.GetFullPath(fallback, baseDirectory);
        }
        try
        {
            return Path.GetFullPath(value ?? fallback, baseDirectory);
        }
        catch (ArgumentException e)
        {
            table.Problem(key, $"{where} {key}: '{value}' is not a usable path: {e.Message}");
            return Path.GetFullPath(fallback, baseDirectory);
        }
    }

    /// <summary>[tls]: loads the certificate and key now, so a bad file stops the daemon before it serves.</summary>
    private static (NbdTlsOptions Options, TlsSettings Settings) ReadTls(TableReader table, string stateDir)
    {
        string modeText = table.String("mode") ?? "off";
        var mode = modeText switch { "off" => TlsMode.Off, "allow" => TlsMode.Allow, "require" => TlsMode.Require, _ => (TlsMode?)null };
        string? certificate = table.Contains("certificate") ? ResolvePath(table, "certificate", "", stateDir, "[tls]") : null;
        string? key = table.Contains("key") ? ResolvePath(table, "key", "", stateDir, "[tls]") : null;
        string? clientCa = table.Contains("client_ca") ? ResolvePath(table, "client_ca", "", stateDir, "[tls]") : null;
        var settings = new TlsSettings(modeText, certificate, key, clientCa);
        var off = new NbdTlsOptions(TlsMode.Off, null, null);
        if (mode is null)
        {
            table.Problem("mode", $"[tls] mode must be \"off\", \"allow\" or \"require\", not '{modeText}'");
            return (off, settings);
        }
        if (mode == TlsMode.Off) return (off, settings);
        if (certificate is null || key is null)
        {
            table.Problem("mode", $"[tls] mode = \"{modeText}\" needs certificate and key (PEM files)");
            return (off, settings);
        }
        try
        {
            var serverCertificate = X509Certificate2.CreateFromPemFile(certificate, key);
            X509Certificate2Collection? ca = null;
            if (clientCa is not null)
            {
                ca = [];
                ca.ImportFromPemFile(clientCa);
                if (ca.Count == 0) table.Problem("client_ca", $"[tls] client_ca: {clientCa} holds no certificate");
            }
            return (new NbdTlsOptions(mode.Value, serverCertificate, ca), settings);
        }
        catch (Exception e) when (e is System.Security.Cryptography.CryptographicException or IOException or UnauthorizedAccessException)
        {
            table.Problem("certificate", $"[tls] cannot load certificate {certificate} with key {key}: {e.Message}");
            return (off, settings);
        }
    }

    private sealed record TopLevelTables(TableReader Daemon, TableReader Timers, TableReader Tls, TableReader Metrics, List<TableReader> KeyStores, List<TableReader> EncryptionSets, List<TableReader> Disks);

    /// <summary>Sorts the document's top level into the known tables; anything else, or a table of the wrong shape, is a problem.</summary>
    private static TopLevelTables TopLevel(LocatedTable root, ConfigProblems problems)
    {
        var singles = new Dictionary<string, TableReader>();
        var arrays = ConfigSchema.Tables.Where(t => t.IsArray).ToDictionary(t => t.Name, _ => new List<TableReader>());
        foreach (var (key, value) in root.Entries)
        {
            var schema = ConfigSchema.FindTable(key);
            bool isTable = value.Value is LocatedTable;
            bool isTableArray = value.Value is List<LocatedValue> { Count: > 0 } list && list.All(v => v.Value is LocatedTable);
            if (schema is null)
            {
                var owners = ConfigSchema.Tables.Where(t => t.Find(key) is not null).Select(t => t.Header).ToList();
                problems.Add(value.Line, isTable || isTableArray
                    ? $"unknown table [{key}]{ConfigSuggestions.ForTable(key)}"
                    : $"'{key}' is outside any table; " + (owners.Count > 0
                        ? $"it is a key of {string.Join(" and ", owners)}: move it below that header"
                        : "keys belong below a table header such as [daemon]"));
            }
            else if (!schema.IsArray && isTable)
            {
                singles[key] = Reader((LocatedTable)value.Value, schema, problems, 0);
            }
            else if (schema.IsArray && isTableArray)
            {
                foreach (var (element, index) in ((List<LocatedValue>)value.Value).Select((v, i) => (v, i)))
                    arrays[key].Add(Reader((LocatedTable)element.Value, schema, problems, index));
            }
            else
            {
                problems.Add(value.Line, schema.IsArray
                    ? isTable
                        ? $"[{key}] must be written {schema.Header}, one per {key.Replace('_', ' ')}"
                        : $"'{key}' must be {schema.Header} tables, not {TableReader.Describe(value.Value)}"
                    : isTableArray
                        ? $"{schema.Header} is one table; write {schema.Header}, not [[{key}]]"
                        : $"'{key}' must be the table {schema.Header}, not {TableReader.Describe(value.Value)}");
            }
        }
        TableReader Single(ConfigTable schema) => singles.GetValueOrDefault(schema.Name) ?? new TableReader(new LocatedTable(0), schema, problems, schema.Header);
        return new TopLevelTables(Single(ConfigSchema.Daemon), Single(ConfigSchema.Timers), Single(ConfigSchema.Tls), Single(ConfigSchema.MetricsTable),
            arrays[ConfigSchema.KeyStore.Name], arrays[ConfigSchema.EncryptionSet.Name], arrays[ConfigSchema.Disk.Name]);
    }

    private static TableReader Reader(LocatedTable table, ConfigTable schema, ConfigProblems problems, int index)
    {
        var reader = new TableReader(table, schema, problems, schema.Header);
        if (schema.IsArray) reader.Where = reader.String("name") is { } name ? $"{schema.Header} '{name}'" : $"{schema.Header} #{index + 1}";
        reader.CheckKeys();
        return reader;
    }

    /// <summary>The rule for disk, store and set names (a disk's name is its NBD export name).</summary>
    public static bool IsValidName(string name) => NamePattern().IsMatch(name);

    [GeneratedRegex("^[A-Za-z0-9._-]{1,64}$")]
    private static partial Regex NamePattern();
}
