using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace ManagedDisks.Keys.Audit;

/// <summary>
/// An append-only, hash-chained log of key events, one JSON object per line. Each line carries
/// the hash of the line before it (<c>prev</c>) and its own hash over its content and
/// <c>prev</c>, so editing, inserting or deleting a line breaks the chain; a head file records
/// the last sequence number and hash, so cutting lines off the end is detected too.
/// Appends from the daemon and from the CLI are serialised by an exclusive lock on the log.
/// </summary>
public sealed class AuditLog
{
    private const string Genesis = "0000000000000000000000000000000000000000000000000000000000000000";
    private static readonly TimeSpan LockWait = TimeSpan.FromSeconds(10);

    private readonly string _path;

    private AuditLog(string path) => _path = path;

    public string Path => _path;
    private string HeadPath => _path + ".head";

    public static AuditLog Open(string path)
    {
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(path)!);
        return new AuditLog(path);
    }

    public void Append(AuditRecord record)
    {
        using var stream = OpenLocked();
        var (sequence, previous) = LastEntry(stream);
        var entry = new JsonObject
        {
            ["seq"] = sequence + 1,
            ["time"] = DateTimeOffset.UtcNow.ToString("yyyy-MM-ddTHH:mm:ss.fffZ"),
            ["identity"] = record.Identity,
            ["operation"] = record.Operation,
            ["result"] = record.Result,
            ["key_store"] = record.KeyStore,
            ["key"] = record.Key,
            ["key_version"] = record.KeyVersion,
            ["disk"] = record.Disk,
            ["detail"] = record.Detail,
            ["prev"] = previous,
        };
        string hash = Hash(entry);
        entry["hash"] = hash;
        byte[] line = Encoding.UTF8.GetBytes(entry.ToJsonString() + "\n");
        stream.Seek(0, SeekOrigin.End);
        stream.Write(line);
        stream.Flush(flushToDisk: true);
        PlatformKeyStore.WriteAtomically(HeadPath, Encoding.UTF8.GetBytes($"{sequence + 1} {hash}\n"));
    }

    /// <summary>The hash of a line: SHA-256 over its JSON without the <c>hash</c> member, as written.</summary>
    private static string Hash(JsonObject entryWithoutHash) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(entryWithoutHash.ToJsonString())));

    public IReadOnlyList<JsonObject> ReadAll()
    {
        if (!File.Exists(_path)) return [];
        return File.ReadLines(_path).Where(l => l.Length > 0).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();
    }

    /// <summary>Checks the whole chain; returns null if intact, else what is wrong and where.</summary>
    public string? Verify(out int records)
    {
        records = 0;
        if (!File.Exists(_path)) return File.Exists(HeadPath) ? "the audit log is missing but its head file exists: the log was deleted" : null;
        string previous = Genesis;
        long sequence = 0;
        int lineNumber = 0;
        foreach (string line in File.ReadLines(_path))
        {
            lineNumber++;
            JsonObject entry;
            try { entry = JsonNode.Parse(line)!.AsObject(); }
            catch (JsonException) { return $"line {lineNumber}: not a JSON record (the log was edited)"; }
            string? stored = (string?)entry["hash"];
            entry.Remove("hash");
            if ((string?)entry["prev"] != previous) return $"line {lineNumber}: does not follow line {lineNumber - 1} (a line was inserted, deleted or reordered before it)";
            if ((long?)entry["seq"] != sequence + 1) return $"line {lineNumber}: sequence {(long?)entry["seq"]} where {sequence + 1} was expected";
            if (stored != Hash(entry)) return $"line {lineNumber}: its content does not match its hash (the line was edited)";
            previous = stored!;
            sequence++;
        }
        records = lineNumber;
        if (File.Exists(HeadPath))
        {
            string[] head = File.ReadAllText(HeadPath).Trim().Split(' ');
            if (head.Length != 2 || head[0] != sequence.ToString() || head[1] != previous)
                return $"the log ends at record {sequence} but its head file records {head[0]}: lines were removed from the end";
        }
        return null;
    }

    private FileStream OpenLocked()
    {
        var deadline = DateTime.UtcNow + LockWait;
        while (true)
        {
            try
            {
                // FileShare.None is flock(LOCK_EX) on Linux: one appender at a time across processes.
                return new FileStream(_path, new FileStreamOptions
                {
                    Mode = FileMode.OpenOrCreate, Access = FileAccess.ReadWrite, Share = FileShare.None,
                    UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
                });
            }
            catch (IOException) when (DateTime.UtcNow < deadline)
            {
                Thread.Sleep(Random.Shared.Next(2, 20)); // lock held by another appender: retry (bounded by LockWait)
            }
        }
    }

    private static (long Sequence, string Hash) LastEntry(FileStream stream)
    {
        if (stream.Length == 0) return (0, Genesis);
        // Read back far enough to hold the last line; records are far smaller than 64 KiB.
        long start = Math.Max(0, stream.Length - 65536);
        var tail = new byte[stream.Length - start];
        stream.Position = start;
        stream.ReadExactly(tail);
        string text = Encoding.UTF8.GetString(tail).TrimEnd('\n');
        string last = text[(text.LastIndexOf('\n') + 1)..];
        var entry = JsonNode.Parse(last)!.AsObject();
        return ((long)entry["seq"]!, (string)entry["hash"]!);
    }
}
