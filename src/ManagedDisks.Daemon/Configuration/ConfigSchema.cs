namespace ManagedDisks.Daemon.Configuration;

/// <summary>How a key's value may be written in disks.toml.</summary>
internal enum ConfigValueKind
{
    /// <summary>Any string.</summary>
    String,
    /// <summary>A string naming a file or folder; relative paths are resolved, and a path is never redacted.</summary>
    Path,
    Boolean,
    Integer,
    /// <summary>"10G" (binary units) or an integer byte count.</summary>
    Size,
    /// <summary>"250ms", "10s", "5m", "1h", "1d".</summary>
    Duration,
    /// <summary>An array of strings.</summary>
    StringList,
}

internal sealed record ConfigKey(string Name, ConfigValueKind Kind);

/// <summary>A table of disks.toml: <c>[daemon]</c> once, or <c>[[disk]]</c> repeated.</summary>
internal sealed record ConfigTable(string Name, bool IsArray, IReadOnlyList<ConfigKey> Keys)
{
    public string Header => IsArray ? $"[[{Name}]]" : $"[{Name}]";

    public ConfigKey? Find(string key) => Keys.FirstOrDefault(k => k.Name == key);
}

/// <summary>
/// Every table and key disks.toml may contain, in the order <c>config show</c> prints them.
/// A key that is not here is a typo and an error; disks.toml.example documents each one.
/// </summary>
internal static class ConfigSchema
{
    public static readonly ConfigTable Daemon = new("daemon", IsArray: false,
    [
        new("state_dir", ConfigValueKind.Path),
        new("listen", ConfigValueKind.StringList),
        new("admin_socket", ConfigValueKind.Path),
        new("max_connections", ConfigValueKind.Integer),
        new("handshake_timeout", ConfigValueKind.Duration),
        new("connection_inflight_bytes", ConfigValueKind.Size),
        new("platform_key_secret", ConfigValueKind.Path),
        new("on_key_revoked", ConfigValueKind.StringList),
    ]);

    public static readonly ConfigTable Timers = new("timers", IsArray: false,
    [
        new("key_poll_interval", ConfigValueKind.Duration),
        new("revoke_grace", ConfigValueKind.Duration),
        new("unreachable_grace", ConfigValueKind.Duration),
        new("rotation_check_interval", ConfigValueKind.Duration),
    ]);

    public static readonly ConfigTable Tls = new("tls", IsArray: false,
    [
        new("mode", ConfigValueKind.String),
        new("certificate", ConfigValueKind.Path),
        new("key", ConfigValueKind.Path),
        new("client_ca", ConfigValueKind.Path),
    ]);

    public static readonly ConfigTable MetricsTable = new("metrics", IsArray: false,
    [
        new("listen", ConfigValueKind.String),
    ]);

    public static readonly ConfigTable KeyStore = new("key_store", IsArray: true,
    [
        new("name", ConfigValueKind.String),
        new("type", ConfigValueKind.String),
        new("path", ConfigValueKind.Path),
        new("master_key_file", ConfigValueKind.Path),
        // type = "pkcs11" (docs/PKCS11.md)
        new("module", ConfigValueKind.Path),
        new("token_label", ConfigValueKind.String),
        new("slot", ConfigValueKind.Integer),
        new("pin_file", ConfigValueKind.Path),
    ]);

    public static readonly ConfigTable EncryptionSet = new("encryption_set", IsArray: true,
    [
        new("name", ConfigValueKind.String),
        new("key_store", ConfigValueKind.String),
        new("key", ConfigValueKind.String),
        new("key_version", ConfigValueKind.String),
        new("auto_rotate", ConfigValueKind.Boolean),
        new("identity", ConfigValueKind.String),
    ]);

    public static readonly ConfigTable Disk = new("disk", IsArray: true,
    [
        new("name", ConfigValueKind.String),
        new("size", ConfigValueKind.Size),
        new("path", ConfigValueKind.Path),
        new("description", ConfigValueKind.String),
        new("read_only", ConfigValueKind.Boolean),
        new("sector_size", ConfigValueKind.Size),
        new("detect_zeroes", ConfigValueKind.Boolean),
        new("encryption_set", ConfigValueKind.String),
    ]);

    public static readonly IReadOnlyList<ConfigTable> Tables = [Daemon, Timers, Tls, MetricsTable, KeyStore, EncryptionSet, Disk];

    public static ConfigTable? FindTable(string name) => Tables.FirstOrDefault(t => t.Name == name);
}
