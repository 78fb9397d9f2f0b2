using ManagedDisks.Keys.Audit;

namespace ManagedDisks.Tests;

public class AuditLogTests
{
    private string _dir = null!;
    private string _path = null!;

    [SetUp]
    public void SetUp()
    {
        _dir = Directory.CreateTempSubdirectory("md-audit-").FullName;
        _path = Path.Combine(_dir, "audit.log");
    }

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, true);

    private AuditLog Filled(int count)
    {
        var log = AuditLog.Open(_path);
        for (int i = 0; i < count; i++) log.Append(new AuditRecord("id", $"op{i}", "ok", "vault1", "kek1", "v1", "disk1"));
        return log;
    }

    [Test]
    public void RecordsChainAndVerify()
    {
        var log = Filled(5);
        Assert.That(log.Verify(out int records), Is.Null);
        Assert.That(records, Is.EqualTo(5));
        var all = log.ReadAll();
        Assert.That(all.Select(r => (long)r["seq"]!), Is.EqualTo(new long[] { 1, 2, 3, 4, 5 }));
        Assert.That((string?)all[1]["prev"], Is.EqualTo((string?)all[0]["hash"]));
        Assert.That(File.GetUnixFileMode(_path), Is.EqualTo(UnixFileMode.UserRead | UnixFileMode.UserWrite));
    }

    [Test]
    public void EditingAnyFieldOfAnyLineIsDetected()
    {
        var log = Filled(3);
        string[] lines = File.ReadAllLines(_path);
        foreach (var (from, to) in new[] { ("\"op1\"", "\"opX\""), ("\"ok\"", "\"no\""), ("disk1", "disk2") })
        {
            File.WriteAllLines(_path, lines.Select((l, i) => i == 1 ? l.Replace(from, to) : l));
            Assert.That(log.Verify(out _), Does.StartWith("line 2"), $"{from} -> {to}");
        }
    }

    [Test]
    public void DeletingInsertingOrTruncatingIsDetected()
    {
        var log = Filled(4);
        string[] lines = File.ReadAllLines(_path);
        File.WriteAllLines(_path, lines.Where((_, i) => i != 1));
        Assert.That(log.Verify(out _), Does.Contain("line 2"));
        File.WriteAllLines(_path, [lines[0], lines[1], lines[1], .. lines[2..]]);
        Assert.That(log.Verify(out _), Does.Contain("line 3"));
        File.WriteAllLines(_path, lines[..^1]);
        Assert.That(log.Verify(out _), Does.Contain("removed from the end"));
        File.Delete(_path);
        Assert.That(log.Verify(out _), Does.Contain("deleted"));
    }

    [Test]
    public async Task ConcurrentAppendersKeepOneChain()
    {
        // Separate instances, as the daemon and the CLI are separate processes sharing the file.
        await Task.WhenAll(Enumerable.Range(0, 4).Select(w => Task.Run(() =>
        {
            var log = AuditLog.Open(_path);
            for (int i = 0; i < 25; i++) log.Append(new AuditRecord($"writer{w}", "op", "ok"));
        })));
        Assert.That(AuditLog.Open(_path).Verify(out int records), Is.Null);
        Assert.That(records, Is.EqualTo(100));
    }
}
