using System.Buffers.Binary;
using ManagedDisks.Fuzz.Harness;

namespace ManagedDisks.Tests;

/// <summary>
/// Every committed fuzz input (the seeds recorded from real clients and the minimised inputs of
/// past findings) replayed in-process through the same targets afl-fuzz runs
/// (tests/ManagedDisks.Fuzz/fuzz.sh). A target throws when the code under test breaks one of its
/// promises, so a regression of a fixed finding fails here, without AFL.
/// </summary>
[TestFixture]
public class FuzzCorpusTests
{
    private static readonly string Root = Path.Combine(AppContext.BaseDirectory, "fuzz");

    public static IEnumerable<TestCaseData> Inputs()
    {
        foreach (var target in FuzzTargets.All)
        foreach (string kind in (string[])["corpus", "regressions"])
        {
            string folder = Path.Combine(Root, kind, target.CorpusFolder);
            if (!Directory.Exists(folder)) continue;
            foreach (string file in Directory.GetFiles(folder).Order())
                yield return new TestCaseData(target.Name, file).SetName($"Fuzz input {target.Name} {kind}/{target.CorpusFolder}/{Path.GetFileName(file)}");
        }
    }

    [TestCaseSource(nameof(Inputs))]
    public void Input_is_handled_as_promised(string target, string file) =>
        Assert.DoesNotThrow(() => FuzzTargets.Find(target)!.Run(File.ReadAllBytes(file)));

    [Test]
    public void Every_target_has_seeds()
    {
        foreach (var target in FuzzTargets.All)
            Assert.That(Directory.GetFiles(Path.Combine(Root, "corpus", target.CorpusFolder)), Is.Not.Empty, target.Name);
    }

    /// <summary>The checks can fail: a READ left unanswered, answered for another cookie, or short, is a finding.</summary>
    [Test]
    public void Transmission_checker_catches_wrong_answers()
    {
        byte[] read = new byte[28];
        BinaryPrimitives.WriteUInt32BigEndian(read, 0x25609513);
        BinaryPrimitives.WriteUInt64BigEndian(read.AsSpan(8), 7);  // cookie
        BinaryPrimitives.WriteUInt32BigEndian(read.AsSpan(24), 512); // length
        byte[] Reply(ulong cookie, int data)
        {
            var reply = new byte[16 + data];
            BinaryPrimitives.WriteUInt32BigEndian(reply, 0x67446698);
            BinaryPrimitives.WriteUInt64BigEndian(reply.AsSpan(8), cookie);
            return reply;
        }

        Assert.DoesNotThrow(() => TransmissionReplyChecker.Check(read, Reply(7, 512), structured: false, maxPayload: 1 << 20));
        Assert.Throws<FuzzFinding>(() => TransmissionReplyChecker.Check(read, [], structured: false, maxPayload: 1 << 20));
        Assert.Throws<FuzzFinding>(() => TransmissionReplyChecker.Check(read, Reply(8, 512), structured: false, maxPayload: 1 << 20));
        Assert.Throws<FuzzFinding>(() => TransmissionReplyChecker.Check(read, Reply(7, 100), structured: false, maxPayload: 1 << 20));
        Assert.Throws<FuzzFinding>(() => TransmissionReplyChecker.Check(read, Reply(7, 512), structured: true, maxPayload: 1 << 20));
    }
}
