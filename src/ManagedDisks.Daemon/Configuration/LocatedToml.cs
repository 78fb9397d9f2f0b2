using Tomlyn;
using Tomlyn.Syntax;

namespace ManagedDisks.Daemon.Configuration;

/// <summary>
/// A TOML value and the 1-based line it was written on. <see cref="Value"/> is a string, long,
/// bool, double, <see cref="TomlDateTime"/>, <see cref="LocatedTable"/> or a list of
/// <see cref="LocatedValue"/> (an array; [[x]] is a list of tables).
/// </summary>
internal sealed record LocatedValue(object Value, int Line);

/// <summary>A TOML table whose entries remember their lines; <see cref="Line"/> is its header's.</summary>
internal sealed class LocatedTable(int line)
{
    private readonly OrderedDictionary<string, LocatedValue> _entries = new(StringComparer.Ordinal);

    public int Line { get; set; } = line;

    public IEnumerable<KeyValuePair<string, LocatedValue>> Entries => _entries;

    public LocatedValue? this[string key] => _entries.GetValueOrDefault(key);

    public void Set(string key, LocatedValue value) => _entries[key] = value;
}

/// <summary>
/// Reads TOML through Tomlyn's syntax tree rather than its object mapper: the tree knows the
/// line of every key and table header (including each [[disk]]), which the mapper drops.
/// Tomlyn checks the syntax and TOML's own rules (no key defined twice); this builds the tree.
/// </summary>
internal static class LocatedToml
{
    /// <summary>The document's root table; syntax errors go to <paramref name="problems"/> with line and column.</summary>
    public static LocatedTable Parse(string text, string source, ConfigProblems problems)
    {
        DocumentSyntax document;
        try
        {
            document = Tomlyn.Parsing.SyntaxParser.Parse(text, source, validate: true);
        }
        catch (TomlException e)
        {
            problems.Add(e.Line ?? 0, e.Column ?? 0, e.Message);
            return new LocatedTable(1);
        }
        if (document.HasErrors)
        {
            foreach (var d in document.Diagnostics.Where(d => d.Kind == DiagnosticMessageKind.Error).DistinctBy(d => (d.Span.Start.Line, d.Message)))
                problems.Add(d.Span.Start.Line + 1, d.Span.Start.Column + 1, d.Message.Replace('`', '\''));
            return new LocatedTable(1);
        }

        var root = new LocatedTable(1);
        foreach (var keyValue in document.KeyValues) AddKeyValue(root, keyValue);
        foreach (var header in document.Tables)
        {
            int line = LineOf(header);
            var path = KeyPath(header.Name);
            LocatedTable table;
            if (header is TableArraySyntax)
            {
                var parent = Descend(root, path[..^1], line);
                if (parent[path[^1]]?.Value is not List<LocatedValue> array)
                {
                    array = [];
                    parent.Set(path[^1], new LocatedValue(array, line));
                }
                table = new LocatedTable(line);
                array.Add(new LocatedValue(table, line));
            }
            else
            {
                table = Descend(root, path, line);
                table.Line = line; // a [a.b] header after a.b.c = 1 defined it implicitly
            }
            foreach (var keyValue in header.Items) AddKeyValue(table, keyValue);
        }
        return root;
    }

    private static void AddKeyValue(LocatedTable table, KeyValueSyntax keyValue)
    {
        int line = LineOf(keyValue);
        var path = KeyPath(keyValue.Key);
        Descend(table, path[..^1], line).Set(path[^1], new LocatedValue(Convert(keyValue.Value!), line));
    }

    /// <summary>The table at a dotted path, created where missing; through an array of tables, its last table (TOML 1.0 "Array of Tables").</summary>
    private static LocatedTable Descend(LocatedTable table, IEnumerable<string> path, int line)
    {
        foreach (string part in path)
        {
            switch (table[part]?.Value)
            {
                case LocatedTable child:
                    table = child;
                    break;
                case List<LocatedValue> { Count: > 0 } array when array[^1].Value is LocatedTable last:
                    table = last;
                    break;
                default: // absent (Tomlyn has already refused a key redefined as a table)
                    var created = new LocatedTable(line);
                    table.Set(part, new LocatedValue(created, line));
                    table = created;
                    break;
            }
        }
        return table;
    }

    private static object Convert(ValueSyntax value) => value switch
    {
        StringValueSyntax s => s.Value ?? "",
        IntegerValueSyntax i => i.Value,
        BooleanValueSyntax b => b.Value,
        FloatValueSyntax f => f.Value,
        DateTimeValueSyntax d => d.Value,
        ArraySyntax a => a.Items.Select(item => new LocatedValue(Convert(item.Value!), LineOf(item.Value!))).ToList(),
        InlineTableSyntax t => InlineTable(t),
        _ => value.ToString()!,
    };

    private static LocatedTable InlineTable(InlineTableSyntax syntax)
    {
        var table = new LocatedTable(LineOf(syntax));
        foreach (var item in syntax.Items) AddKeyValue(table, item.KeyValue!);
        return table;
    }

    private static string[] KeyPath(KeySyntax? key) =>
        key is null ? [] : [KeyText(key.Key), .. key.DotKeys.Select(d => KeyText(d.Key))];

    private static string KeyText(BareKeyOrStringValueSyntax? key) => key switch
    {
        BareKeySyntax bare => bare.Key?.Text ?? "",
        StringValueSyntax quoted => quoted.Value ?? "",
        _ => key?.ToString()?.Trim() ?? "",
    };

    private static int LineOf(SyntaxNode node) => node.Span.Start.Line + 1;
}
