// Licensed to the Apache Software Foundation (ASF) under one
// or more contributor license agreements.  See the NOTICE file
// distributed with this work for additional information
// regarding copyright ownership.  The ASF licenses this file
// to you under the Apache License, Version 2.0 (the
// "License"); you may not use this file except in compliance
// with the License.  You may obtain a copy of the License at
//
//   http://www.apache.org/licenses/LICENSE-2.0
//
// Unless required by applicable law or agreed to in writing,
// software distributed under the License is distributed on an
// "AS IS" BASIS, WITHOUT WARRANTIES OR CONDITIONS OF ANY
// KIND, either express or implied.  See the License for the
// specific language governing permissions and limitations
// under the License.

// Test of pipelined's patch 7 to the ack grouping tracker (see PATCHES.md), under
// testing/synctest.

//go:build go1.25

package pulsar

import (
	"testing"
	"testing/synctest"
	"time"
)

// TestAckGroupingCloseWaitsForTimerFlush catches the timer's flush in the middle of sending a
// cumulative ack, then closes the tracker: close must not return before that ack is sent, or
// the consumer's close request, queued after it, would overtake the ack and the ack would be
// lost (the events loop stops at the close request).
func TestAckGroupingCloseWaitsForTimerFlush(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		inFlush := make(chan struct{})
		release := make(chan struct{})
		var sent []MessageID
		tr := newAckGroupingTracker(&AckGroupingOptions{MaxSize: 1000, MaxTime: 100 * time.Millisecond},
			nil,
			func(id MessageID) {
				if len(sent) == 0 { // the timer's flush: hold it where upstream's close overtakes it
					close(inFlush)
					<-release
				}
				sent = append(sent, id)
			},
			nil)
		id := newMessageID(1, 7, -1, 0, 0)
		tr.addCumulative(id)
		<-inFlush // the timer fired: its flush took the cumulative ack and is sending it
		closed := make(chan struct{})
		go func() {
			tr.close()
			close(closed)
		}()
		synctest.Wait() // close runs until it returns or blocks for good
		select {
		case <-closed:
			close(release)
			t.Fatal("close returned while the timer's flush had not sent its cumulative ack")
		default:
		}
		close(release)
		<-closed
		if len(sent) != 1 || messageIDCompare(sent[0], id) != 0 {
			t.Fatalf("acks sent %v, want %v once", sent, id)
		}
	})
}
