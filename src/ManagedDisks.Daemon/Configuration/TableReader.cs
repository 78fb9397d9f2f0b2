using System.Globalization;
using Tomlyn;

namespace ManagedDisks.Daemon.Configuration;

/// <summary>
/// Typed access to one table of disks.toml. <see cref="CheckKeys"/> reports unknown keys (with a
/// suggestion) and values of the wrong type, each on its line; the getters then return null for
/// a missing or wrongly typed key, so a caller reports only what is left: missing keys and bad values.
/// </summary>
internal sealed class TableReader(LocatedTable table, ConfigTable schema, ConfigProblems problems, string where)
{
    /// <summary>How messages name this table: "[daemon]", "[[disk]] #2", then "[[disk]] 'db'" once the name is known.</summary>
    public string Where { get; set; } = where;

    /// <summary>Starts a message: "[daemon] " as in "[daemon] listen: ...", "[[disk]] 'db': " as in "[[disk]] 'db': size ...".</summary>
    private string Prefix => schema.IsArray ? $"{Where}: " : $"{Where} ";

    /// <summary>The line of the table's header, where a missing key is reported.</summary>
    public int Line => table.Line;

    public bool Contains(string key) => table[key] is not null;

    /// <summary>The key's line, or the table header's when the key is not written.</summary>
    public int LineOf(string key) => table[key]?.Line ?? table.Line;

    public void Problem(string key, string message) => problems.Add(LineOf(key), message);

    public void CheckKeys()
    {
        foreach (var (key, value) in table.Entries)
        {
            if (schema.Find(key) is not { } known)
            {
                string what = value.Value is LocatedTable ? $"unknown table [{schema.Name}.{key}]" : $"unknown key '{key}'";
                problems.Add(value.Line, $"{Prefix}{what}{ConfigSuggestions.ForKey(key, schema)}");
            }
            else if (!Fits(value, known.Kind, out string? detail))
            {
                problems.Add(value.Line, $"{Prefix}{key} must be {Expected(known.Kind)}, not {detail}");
            }
        }
    }

    public string? String(string key) => Get(key, ConfigValueKind.String) as string;

    public string? Path(string key) => Get(key, ConfigValueKind.Path) as string;

    public string? Duration(string key) => Get(key, ConfigValueKind.Duration) as string;

    public bool? Boolean(string key) => Get(key, ConfigValueKind.Boolean) as bool?;

    public long? Integer(string key) => Get(key, ConfigValueKind.Integer) as long?;

    /// <summary>A size as written: "10G", or an integer byte count as its digits; <see cref="Units.TryParseSize"/> reads both.</summary>
    public string? Size(string key) => Get(key, ConfigValueKind.Size) switch
    {
        long bytes => bytes.ToString(CultureInfo.InvariantCulture),
        string text => text,
        _ => null,
    };

    /// <summary>Each string with its own line, so a bad element of a multi-line array is reported where it is.</summary>
    public IReadOnlyList<LocatedValue>? StringList(string key) => Get(key, ConfigValueKind.StringList) as List<LocatedValue>;

    private object? Get(string key, ConfigValueKind kind)
    {
        System.Diagnostics.Debug.Assert(schema.Find(key)?.Kind == kind, $"{schema.Header} {key} is not a {kind} in ConfigSchema");
        return table[key] is { } value && Fits(value, kind, out _) ? value.Value : null;
    }

    private static bool Fits(LocatedValue value, ConfigValueKind kind, out string? detail)
    {
        detail = null;
        bool fits = (kind, value.Value) switch
        {
            (ConfigValueKind.String or ConfigValueKind.Path or ConfigValueKind.Duration, string) => true,
            (ConfigValueKind.Boolean, bool) => true,
            (ConfigValueKind.Integer, long) => true,
            (ConfigValueKind.Size, long or string) => true,
            (ConfigValueKind.StringList, List<LocatedValue> items) => items.All(i => i.Value is string),
            _ => false,
        };
        if (!fits)
        {
            detail = value.Value is List<LocatedValue> list && kind == ConfigValueKind.StringList
                ? $"an array holding {Describe(list.First(i => i.Value is not string).Value)}"
                : Describe(value.Value);
        }
        return fits;
    }

    private static string Expected(ConfigValueKind kind) => kind switch
    {
        ConfigValueKind.String => "a string",
        ConfigValueKind.Path => "a string (a path)",
        ConfigValueKind.Boolean => "true or false",
        ConfigValueKind.Integer => "an integer",
        ConfigValueKind.Size => "a size like \"512M\" or \"10G\", or an integer byte count",
        ConfigValueKind.Duration => "a duration string like \"10s\" or \"5m\"",
        ConfigValueKind.StringList => "an array of strings, e.g. [\"a\", \"b\"]",
        _ => kind.ToString(),
    };

    internal static string Describe(object value) => value switch
    {
        string s => $"the string \"{s}\"",
        long l => $"the integer {l}",
        bool b => $"the boolean {(b ? "true" : "false")}",
        double d => $"the float {d.ToString(CultureInfo.InvariantCulture)}",
        TomlDateTime t => $"the date-time {t}",
        LocatedTable => "a table",
        List<LocatedValue> => "an array",
        _ => value.ToString() ?? "a value",
    };
}
