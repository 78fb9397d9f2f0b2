using Tomlyn.Serialization;

namespace ManagedDisks.Daemon.Configuration;

// The shape of disks.toml exactly as written; ConfigLoader validates it and resolves paths
// into DaemonSettings. Every property is nullable so that a missing key is told apart from a
// default and reported with its name.

internal sealed class DisksConfigFile
{
    [TomlPropertyName("daemon")] public DaemonSection? Daemon { get; set; }
    [TomlPropertyName("disk")] public List<DiskSection>? Disks { get; set; }
    [TomlPropertyName("key_store")] public List<KeyStoreSection>? KeyStores { get; set; }
    [TomlPropertyName("encryption_set")] public List<EncryptionSetSection>? EncryptionSets { get; set; }
}

internal sealed class KeyStoreSection
{
    [TomlPropertyName("name")] public string? Name { get; set; }
    [TomlPropertyName("type")] public string? Type { get; set; }
    [TomlPropertyName("path")] public string? Path { get; set; }
    [TomlPropertyName("master_key_file")] public string? MasterKeyFile { get; set; }
}

internal sealed class EncryptionSetSection
{
    [TomlPropertyName("name")] public string? Name { get; set; }
    [TomlPropertyName("key_store")] public string? KeyStore { get; set; }
    [TomlPropertyName("key")] public string? Key { get; set; }
    [TomlPropertyName("key_version")] public string? KeyVersion { get; set; }
    [TomlPropertyName("auto_rotate")] public bool? AutoRotate { get; set; }
    [TomlPropertyName("identity")] public string? Identity { get; set; }
}

internal sealed class DaemonSection
{
    [TomlPropertyName("state_dir")] public string? StateDir { get; set; }
    [TomlPropertyName("listen")] public List<string>? Listen { get; set; }
    [TomlPropertyName("admin_socket")] public string? AdminSocket { get; set; }
    [TomlPropertyName("max_connections")] public long? MaxConnections { get; set; }
    [TomlPropertyName("handshake_timeout")] public string? HandshakeTimeout { get; set; }
    [TomlPropertyName("connection_inflight_bytes")] public string? ConnectionInflightBytes { get; set; }
    [TomlPropertyName("platform_key_secret")] public string? PlatformKeySecret { get; set; }
}

internal sealed class DiskSection
{
    [TomlPropertyName("name")] public string? Name { get; set; }
    [TomlPropertyName("size")] public string? Size { get; set; }
    [TomlPropertyName("path")] public string? Path { get; set; }
    [TomlPropertyName("description")] public string? Description { get; set; }
    [TomlPropertyName("read_only")] public bool? ReadOnly { get; set; }
    [TomlPropertyName("sector_size")] public long? SectorSize { get; set; }
    [TomlPropertyName("detect_zeroes")] public bool? DetectZeroes { get; set; }
    [TomlPropertyName("encryption_set")] public string? EncryptionSet { get; set; }
}
