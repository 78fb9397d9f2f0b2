using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace ManagedDisks.Daemon.Configuration;

/// <summary>One key of the effective configuration; <see cref="Value"/> is a string, long, bool, list of strings, or null when not set.</summary>
internal sealed record EffectiveEntry(ConfigKey Key, object? Value);

internal sealed record EffectiveTable(ConfigTable Table, IReadOnlyList<EffectiveEntry> Entries);

/// <summary>
/// The configuration the daemon runs with, as <c>managed-disks config show</c> prints it: every key
/// of <see cref="ConfigSchema"/> with its default filled in and its path made absolute, secrets
/// redacted by <see cref="ConfigRedaction"/>. Its TOML form is itself a valid disks.toml that
/// loads to the same settings.
/// </summary>
internal sealed record EffectiveConfiguration(string Source, IReadOnlyList<EffectiveTable> Tables, IReadOnlyList<(string Name, string Path)> Derived)
{
    public static EffectiveConfiguration From(DaemonSettings settings)
    {
        var tables = new List<EffectiveTable>
        {
            Table(ConfigSchema.Daemon,
                ("state_dir", settings.StateDir),
                ("listen", settings.Listen.Select(l => l.Text).ToList()),
                ("admin_socket", settings.AdminSocket),
                ("max_connections", (long)settings.Server.MaxConnections),
                ("handshake_timeout", Units.FormatDuration(settings.Server.HandshakeTimeout)),
                ("connection_inflight_bytes", settings.Server.MaxInFlightBytesPerConnection),
                ("platform_key_secret", settings.PlatformKeySecretFile),
                ("on_key_revoked", settings.OnKeyRevoked.Count > 0 ? settings.OnKeyRevoked.ToList() : null)),
            Table(ConfigSchema.Timers,
                ("key_poll_interval", Units.FormatDuration(settings.KeyPollInterval)),
                ("revoke_grace", Units.FormatDuration(settings.RevokeGrace)),
                ("unreachable_grace", Units.FormatDuration(settings.UnreachableGrace)),
                ("rotation_check_interval", Units.FormatDuration(settings.RotationCheckInterval))),
            Table(ConfigSchema.MetricsTable, ("listen", settings.Metrics?.ToString())),
            Table(ConfigSchema.Tls, ("mode", settings.Tls.Mode), ("certificate", settings.Tls.Certificate), ("key", settings.Tls.Key), ("client_ca", settings.Tls.ClientCa)),
        };
        tables.AddRange(settings.KeyStores.Select(k => Table(ConfigSchema.KeyStore,
            ("name", k.Name), ("type", k.Type), ("path", k.Module is null ? k.Path : null), ("master_key_file", k.Module is null ? k.MasterKeyFile : null),
            ("module", k.Module), ("token_label", k.TokenLabel), ("slot", (long?)k.Slot), ("pin_file", k.PinFile))));
        tables.AddRange(settings.EncryptionSets.Select(s => Table(ConfigSchema.EncryptionSet,
            ("name", s.Name), ("key_store", s.KeyStore), ("key", s.Key), ("key_version", s.KeyVersion), ("auto_rotate", s.AutoRotate), ("identity", s.Identity))));
        tables.AddRange(settings.Disks.Select(d => Table(ConfigSchema.Disk,
            ("name", d.Name), ("size", d.Size), ("path", d.Path), ("description", d.Description), ("read_only", d.ReadOnly),
            ("sector_size", (long)d.SectorSize), ("detect_zeroes", d.DetectZeroes), ("encryption_set", d.EncryptionSet))));
        return new EffectiveConfiguration(settings.Source, tables, [("platform key", settings.PlatformKeyFile), ("audit log", settings.AuditLog)]);
    }

    /// <summary>A table with a value for each of its schema's keys, in the schema's order; a key left out is a bug here.</summary>
    internal static EffectiveTable Table(ConfigTable table, params (string Key, object? Value)[] values)
    {
        var missing = table.Keys.Select(k => k.Name).Except(values.Select(v => v.Key)).ToList();
        var unknown = values.Select(v => v.Key).Except(table.Keys.Select(k => k.Name)).ToList();
        if (missing.Count > 0 || unknown.Count > 0)
            throw new InvalidOperationException($"{table.Header}: config show lacks {string.Join(", ", missing)} and has unknown {string.Join(", ", unknown)}");
        return new EffectiveTable(table, table.Keys.Select(k => new EffectiveEntry(k, values.First(v => v.Key == k.Name).Value)).ToList());
    }

    public string ToToml()
    {
        var toml = new StringBuilder();
        toml.Append("# The effective configuration of ").Append(Source).Append(": defaults filled in, paths absolute, secrets redacted.\n");
        foreach (var (name, path) in Derived) toml.Append("# ").Append(name).Append(": ").Append(path).Append('\n');
        foreach (var table in Tables)
        {
            toml.Append('\n').Append(table.Table.Header).Append('\n');
            foreach (var entry in table.Entries)
            {
                object? value = ConfigRedaction.Apply(entry.Key.Name, entry.Key.Kind, entry.Value);
                if (value is null)
                {
                    toml.Append("# ").Append(entry.Key.Name).Append(" is not set\n");
                    continue;
                }
                toml.Append(entry.Key.Name).Append(" = ").Append(TomlValue(value));
                if (entry.Key.Kind == ConfigValueKind.Size && value is long bytes && bytes >= 1L << 20) toml.Append(" # ").Append(Units.FormatSize(bytes));
                toml.Append('\n');
            }
        }
        return toml.ToString();
    }

    public string ToJson()
    {
        // Every table of the schema appears, an array one as [] when none is declared.
        var document = new JsonObject();
        foreach (var table in ConfigSchema.Tables.Concat(Tables.Select(t => t.Table)).DistinctBy(t => t.Name))
        {
            var objects = Tables.Where(t => t.Table.Name == table.Name).Select(t => (JsonNode)new JsonObject(t.Entries.Select(e =>
                KeyValuePair.Create(e.Key.Name, JsonValueOf(ConfigRedaction.Apply(e.Key.Name, e.Key.Kind, e.Value)))))).ToList();
            document[table.Name] = table.IsArray ? new JsonArray([.. objects]) : objects.SingleOrDefault();
        }
        return document.ToJsonString(new JsonSerializerOptions { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }) + "\n";
    }

    private static JsonNode? JsonValueOf(object? value) => value switch
    {
        null => null,
        string s => JsonValue.Create(s),
        long l => JsonValue.Create(l),
        bool b => JsonValue.Create(b),
        IEnumerable<string> list => new JsonArray([.. list.Select(s => (JsonNode?)JsonValue.Create(s))]),
        _ => throw new InvalidOperationException($"config show cannot print a {value.GetType().Name}"),
    };

    private static string TomlValue(object value) => value switch
    {
        string s => TomlString(s),
        long l => l.ToString(CultureInfo.InvariantCulture),
        bool b => b ? "true" : "false",
        IEnumerable<string> list => "[" + string.Join(", ", list.Select(TomlString)) + "]",
        _ => throw new InvalidOperationException($"config show cannot print a {value.GetType().Name}"),
    };

    /// <summary>A TOML basic string (TOML 1.0 "String": escape '"', '\' and control characters).</summary>
    internal static string TomlString(string s)
    {
        var quoted = new StringBuilder(s.Length + 2).Append('"');
        foreach (char c in s)
        {
            quoted.Append(c switch
            {
                '"' => "\\\"",
                '\\' => "\\\\",
                '\n' => "\\n",
                '\t' => "\\t",
                '\r' => "\\r",
                _ when c < 0x20 || c == 0x7f => $"\\u{(int)c:X4}",
                _ => c.ToString(),
            });
        }
        return quoted.Append('"').ToString();
    }
}
